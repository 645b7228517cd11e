"""Arm's Ethos-N estimator through the bridge. Arm's support library is in no package registry (a user builds it
from ARM-software/ethos-n-driver-stack: docs/targets.md), so the tests that run it skip, saying so, unless
ETHOSN_SUPPORT_LIBRARY names one; CI has none. What needs no library (the request format, refusing what is not a
support library of a known version) runs everywhere."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ETHOSN_SUPPORT_LIBRARY, REPO, need_executable

from toolchain.cli import main
from toolchain.core.errors import InputError, ToolError
from toolchain.targets.ethos_n_arm import arm_estimate
from toolchain.targets.ethos_n_bridge import bridge_executable, find_support_library, request_text, run_bridge
from toolchain.targets.ethos_n_grid import GridPoint, network_of
from toolchain.targets.ethos_n_network import EthosNOpKind, Layer, Network, NpuOp, TensorDesc, Weights
from toolchain.targets.ethos_n_variants import EthosNVariant

SUPPORT_H = "#define ETHOSN_SUPPORT_LIBRARY_VERSION_MAJOR {0}\n#define ETHOSN_SUPPORT_LIBRARY_VERSION_MINOR {1}\n" \
            "#define ETHOSN_SUPPORT_LIBRARY_VERSION_PATCH {2}\n"


@pytest.fixture(scope="session")
def library():
    """Arm's library, or a skip that says why (before any model is built: the fixtures come in this order)."""
    if not ETHOSN_SUPPORT_LIBRARY:
        pytest.skip("Arm's Ethos-N support library is not available: set ETHOSN_SUPPORT_LIBRARY to its "
                    "libEthosNSupport.so (built from ARM-software/ethos-n-driver-stack, docs/targets.md)")
    return find_support_library(ETHOSN_SUPPORT_LIBRARY)


# --------------------------------------------------------------------------- everywhere


def test_request_format():
    w = Weights(values=np.array([1, -2, 3, -4], np.int8).reshape(1, 1, 2, 2), scales=(0.5, 0.25), zero_point=0,
                bias=np.array([7, -8], np.int32))
    x = TensorDesc((1, 4, 4, 2), 3, 0.125)
    conv = NpuOp(EthosNOpKind.CONV, (0,), 1, TensorDesc((1, 4, 4, 2), -1, 0.5), w, (1, 1), (1, 1), (0, 0, 0, 0))
    relu = NpuOp(EthosNOpKind.RELU, (1,), 2, TensorDesc((1, 4, 4, 2), -1, 0.5), relu_bounds=(-1, 127))
    net = Network(((0, x),), (Layer(5, "c", "CONV_2D", (conv, relu)),), (2,))
    text, blob = request_text(net, EthosNVariant.N78_4TOPS_2PLE, 1 << 20)
    assert text == (
        "ethosn-bridge 1\nvariant ETHOS_N78_4TOPS_2PLE_RATIO\nsram_bytes 1048576\ncurrent 0\nend\n"
        "input -1 0 1 4 4 2 i8 NHWC 3 1 0.125 -1\n"
        "conv 5 0 1 1 1 2 2 i8 HWIO 0 2 0.5 0.25 3 0 4 0 0 0 0 1 1 -1 1 0.5 -1 1 4 4 2 i8 NHWC -1 1 0.5 -1\n"
        "relu 5 1 2 -1 127 1 4 4 2 i8 NHWC -1 1 0.5 -1\n"
        "output -1 2\n")
    assert blob == bytes([1, 254, 3, 252]) + (7).to_bytes(4, "little") + (-8).to_bytes(4, "little", signed=True)


def _fake_tree(root: Path, version: tuple[int, int, int], library: bytes) -> Path:
    inc = root / "support_library" / "include" / "ethosn_support_library"
    inc.mkdir(parents=True)
    (inc / "Support.hpp").write_text(SUPPORT_H.format(*version))
    lib_dir = root / "support_library" / "build" / "release_native"
    lib_dir.mkdir(parents=True)
    (lib_dir / "libEthosNSupport.so").write_bytes(library)
    return root / "support_library"


def _some_elf() -> bytes:
    return Path(shutil.which("true") or "/bin/true").read_bytes()


def test_an_unknown_version_is_refused_naming_the_path(tmp_path):
    tree = _fake_tree(tmp_path, (5, 0, 1), _some_elf())
    with pytest.raises(InputError, match=r"support_library: Ethos-N support library version 5.0.1 is not one the "
                                         r"toolchain knows \(6.0.0 \(driver stack 25.03\)\)"):
        find_support_library(tree)


def test_headers_without_a_version_and_a_library_without_headers_are_refused(tmp_path):
    tree = _fake_tree(tmp_path / "a", (6, 0, 0), _some_elf())
    (tree / "include" / "ethosn_support_library" / "Support.hpp").write_text("// no version here\n")
    with pytest.raises(InputError, match="version unknown is not one"):
        find_support_library(tree)
    lone = tmp_path / "b" / "libEthosNSupport.so"
    lone.parent.mkdir()
    lone.write_bytes(_some_elf())
    with pytest.raises(InputError, match="found libEthosNSupport.so but not its headers"):
        find_support_library(lone)


def test_a_library_the_bridge_cannot_be_built_against_is_refused(tmp_path, monkeypatch):
    need_executable("g++", "g++")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tree = _fake_tree(tmp_path, (6, 0, 0), _some_elf())
    lib = find_support_library(tree)  # its headers hold a known version and nothing else: the build fails
    with pytest.raises(InputError, match="is not a usable Ethos-N support library: building the bridge against it "
                                         "failed"):
        bridge_executable(lib)


# --------------------------------------------------------------------------- with Arm's library


def test_the_bridge_reproduces_the_stored_calibration_figures(library):
    lib = library
    results = json.loads((REPO / "benchmarks" / "results" / "ethos_n_calibration.json").read_text())
    for q in [q for q in results["points"] if q["arm"] is not None][:: 97]:
        v = EthosNVariant(q["variant"])
        r = run_bridge(lib, network_of(GridPoint.from_json(q["point"])), v, v.hardware.default_sram_bytes)
        a = arm_estimate(r).layers[0]
        assert (a.cycles, a.weight_bytes, a.mce_cycles) == (q["arm"]["cycles"], q["arm"]["weight_bytes"],
                                                           q["arm"]["mce_cycles"])


@pytest.mark.tf
def test_compile_reports_arms_figures_and_names_what_it_does_not_run(library, conv_bn_int8, tmp_path, capsys):
    lib = library
    rc = main(["compile", str(conv_bn_int8), "--target", "ethos-n78-4tops-2ple", "-o", str(tmp_path),
               "--ethosn-support-library", ETHOSN_SUPPORT_LIBRARY, "--allow-cpu"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    d = json.loads((tmp_path / "compile.json").read_text())
    assert d["estimate_kind"] == "arm" and d["estimate_label"] == lib.label
    assert d["estimate_label"] == "Arm support library estimate (6.0.0, driver stack 25.03)"
    assert f"ESTIMATE (not a compile) of {conv_bn_int8.name} for ethos-n78-4tops-2ple at 1000 MHz: " \
           "Arm support library estimate (6.0.0" in out.out
    assert d["ethos_n"]["estimator"] == "arm_support_library" and d["ethos_n"]["support_library_version"] == "6.0.0"
    # TF 2.21's per-channel Dense: the library's own words, and the layer is on the CPU
    [fc] = d["ethos_n"]["not_supported"]
    assert fc["op"] == "FULLY_CONNECTED" and fc["source"] == "support library"
    assert fc["reason"] == "Multiple quantization scales is not supported for FullyConnected operation"
    assert "does not run on the NPU (support library: Multiple quantization scales" in out.err
    npu = [la for la in d["layers"] if la["target"] == "npu"]
    assert npu and d["cycles_total"] == sum(la["cycles"] for la in npu) + d["ethos_n"]["network_io_cycles"]


@pytest.mark.tf
def test_a_variant_the_library_cannot_estimate_exits_3_with_its_message(library, conv_bn_int8, tmp_path, capsys):
    rc = main(["compile", str(conv_bn_int8), "--target", "ethos-n78-2tops-2ple", "-o", str(tmp_path),
               "--ethosn-support-library", ETHOSN_SUPPORT_LIBRARY, "--allow-cpu"])
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: Arm's Ethos-N support library 6.0.0 refused the network for "
                          "ETHOS_N78_2TOPS_2PLE_RATIO: Estimation didn't find any valid performance data")


def test_a_refused_network_is_a_tool_error(library):
    lib = library
    net = network_of(GridPoint.from_json({"kind": "conv", "height": 8, "width": 8, "in_channels": 16,
                                          "out_channels": 16, "kernel": 1, "stride": 1, "distinct_values": 4,
                                          "seed": 0}))
    with pytest.raises(ToolError, match="refused the network for ETHOS_N78_1TOPS_2PLE_RATIO"):
        run_bridge(lib, net, EthosNVariant.N78_1TOPS_2PLE, 448 * 1024)
