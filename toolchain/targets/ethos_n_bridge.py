"""Arm's Ethos-N estimator, when the user has its support library: find it, build the bridge, run it.

The support library (``libEthosNSupport.so``, from ARM-software/ethos-n-driver-stack) is in
no package registry; a user builds it from the driver stack's source. The bridge
(``ethos_n_bridge.cpp``, package data) is compiled on first use against that library and
its headers with the user's ``g++`` into a cache directory, and runs in a subprocess: a crash
in Arm's code cannot take the toolchain down. It reads a request (``request_text``, plus a
blob of raw weights) and prints the library's per-pass figures as JSON.

A path that is not a support library of a known version is refused before anything runs
(exit 2, naming it); a network the library refuses is a ToolError (exit 3) with its message.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError, ToolError
from .ethos_n_network import EthosNOpKind, Network, NpuOp, TensorDesc, Weights
from .ethos_n_variants import EthosNVariant
from .vela_memory import machine_share_bytes

ENV_VAR = "ETHOSN_SUPPORT_LIBRARY"
# Support library version (ETHOSN_SUPPORT_LIBRARY_VERSION_* in Support.hpp) -> driver stack release:
# the versions whose API the bridge was built and checked against.
KNOWN_VERSIONS = {"6.0.0": "25.03"}
LIBRARY_NAMES = ("libEthosNSupport.so", "libEthosNSupport.a")
HEADER = Path("ethosn_support_library") / "Support.hpp"
BRIDGE_SOURCE = "ethos_n_bridge.cpp"
ESTIMATOR_TIMEOUT_S = 600.0
_VERSION = re.compile(r"#define\s+ETHOSN_SUPPORT_LIBRARY_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)")


@dataclass(frozen=True)
class SupportLibrary:
    library: Path  # libEthosNSupport.so (or .a)
    include_dir: Path  # holds ethosn_support_library/Support.hpp
    version: str

    @property
    def driver_stack(self) -> str:
        return KNOWN_VERSIONS[self.version]

    @property
    def label(self) -> str:
        return f"Arm support library estimate ({self.version}, driver stack {self.driver_stack})"


# --------------------------------------------------------------------------- finding the library


def _candidates(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    dirs = [path, path / "build" / "release_native", path / "lib",
            path / "driver" / "support_library" / "build" / "release_native",
            path / "support_library" / "build" / "release_native"]
    return [d / name for d in dirs for name in LIBRARY_NAMES if (d / name).is_file()]


def _include_dir(library: Path, given: Path) -> Path | None:
    """Headers beside the library's tree: <ancestor>/include (a build tree or an install prefix)."""
    roots = [given] if given.is_dir() else []
    roots += list(library.resolve().parents)[:4]
    for root in roots:
        for inc in (root / "include", root / "driver" / "support_library" / "include",
                    root / "support_library" / "include"):
            if (inc / HEADER).is_file():
                return inc
    return None


def header_version(include_dir: Path) -> str | None:
    parts = dict(_VERSION.findall((include_dir / HEADER).read_text(encoding="utf-8", errors="replace")))
    if set(parts) != {"MAJOR", "MINOR", "PATCH"}:
        return None
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"


def find_support_library(path: str | os.PathLike[str]) -> SupportLibrary:
    """The library at ``path`` (the .so/.a, its build directory or the driver stack's checkout)."""
    given = Path(path)
    if not given.exists():
        raise InputError(f"Ethos-N support library {given}: no such file or directory")
    found = _candidates(given)
    if not found:
        raise InputError(f"{given} is not an Ethos-N support library: no {' or '.join(LIBRARY_NAMES)} there "
                         "(build it with 'scons werror=0 support_library' in the driver stack's driver/ folder)")
    library = found[0]
    head = library.read_bytes()[:8]
    if not head.startswith((b"\x7fELF", b"!<arch>")):
        raise InputError(f"{library} is not an Ethos-N support library (not a shared or static library)")
    include = _include_dir(library, given)
    if include is None:
        raise InputError(f"{given}: found {library.name} but not its headers ({HEADER} in an include/ folder "
                         "of its source tree or install prefix)")
    version = header_version(include)
    if version not in KNOWN_VERSIONS:
        known = ", ".join(f"{v} (driver stack {r})" for v, r in KNOWN_VERSIONS.items())
        raise InputError(f"{given}: Ethos-N support library version {version or 'unknown'} is not one the "
                         f"toolchain knows ({known})")
    return SupportLibrary(library.resolve(), include.resolve(), version)


def library_from_option(option: str | None) -> SupportLibrary | None:
    """``--ethosn-support-library`` if given, else the ETHOSN_SUPPORT_LIBRARY environment variable, else None."""
    chosen = option if option else os.environ.get(ENV_VAR) or None
    return find_support_library(chosen) if chosen else None


# --------------------------------------------------------------------------- building the bridge


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ethos-palette-toolchain" / "ethos-n-bridge"


def _compiler() -> str:
    cxx = shutil.which("g++")
    if cxx is None:
        raise ToolError("the Ethos-N bridge is built with g++, which is not on PATH (Debian: apt-get install g++)")
    return cxx


def bridge_executable(lib: SupportLibrary) -> Path:
    """The bridge built against ``lib`` (built once per library file, source and compiler)."""
    source = files("toolchain.targets").joinpath(BRIDGE_SOURCE).read_bytes()
    cxx = _compiler()
    st = lib.library.stat()
    key = hashlib.sha256(b"\0".join([source, str(lib.library).encode(), str(st.st_size).encode(),
                                     str(st.st_mtime_ns).encode(), lib.version.encode(), cxx.encode()])).hexdigest()
    exe = _cache_root() / key[:24] / "ethos-n-bridge"
    if exe.is_file():
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=exe.parent) as tmp:
        src = Path(tmp) / BRIDGE_SOURCE
        src.write_bytes(source)
        out = Path(tmp) / "bridge"
        link = ([str(lib.library), "-lpthread"] if lib.library.suffix == ".a"
                else [str(lib.library), f"-Wl,-rpath,{lib.library.parent}"])
        argv = [cxx, "-std=c++14", "-O1", f"-I{lib.include_dir}", str(src), *link, "-o", str(out)]
        try:
            proc = subprocess.run(argv, capture_output=True, encoding="utf-8", errors="replace", timeout=600,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise ToolError("building the Ethos-N bridge took over 600 s") from None
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
            raise InputError(f"{lib.library} is not a usable Ethos-N support library: building the bridge against it "
                             f"failed: {first[:300]}")
        os.replace(out, exe)
    return exe


# --------------------------------------------------------------------------- the request


def _scales(scales: tuple[float, ...] | list[float]) -> str:
    return f"{len(scales)} " + " ".join(repr(float(np.float32(s))) for s in scales)


def _quant(t: TensorDesc) -> str:
    return f"{t.zero_point} {_scales([t.scale])} -1"


def _tensor(t: TensorDesc) -> str:
    return " ".join(str(d) for d in t.shape) + f" {t.dtype.value} NHWC {_quant(t)}"


def _weights(w: Weights, depthwise: bool, offset: int) -> str:
    fmt, dim = ("HWIM", 2) if depthwise else ("HWIO", 3)
    per = len(w.scales) > 1
    return (" ".join(str(d) for d in w.hwio) + f" i8 {fmt} {w.zero_point} {_scales(w.scales)} {dim if per else -1}"
            f" {offset} {offset + w.values.size}")


def _pad(p: tuple[int, int, int, int]) -> str:
    return " ".join(str(v) for v in p)


def _op_line(layer: int, op: NpuOp, blob: list[bytes], offset: list[int]) -> str:
    k = op.kind
    ins = " ".join(str(i) for i in op.inputs)
    head = f"{k.value} {layer} "
    if k is EthosNOpKind.UNMAPPED:
        reason = op.reason.encode("utf-8").hex() or "-"
        return head + f"{len(op.inputs)} {ins} 1 {op.output} {_tensor(op.out)} {reason}"
    if k.has_weights:
        w = op.weights
        assert w is not None
        text = _weights(w, k is EthosNOpKind.DEPTHWISE, offset[0])
        data = np.ascontiguousarray(w.values, dtype=np.int8).tobytes() + \
            np.ascontiguousarray(w.bias, dtype="<i4").tobytes()
        blob.append(data)
        offset[0] += len(data)
        if k is EthosNOpKind.FULLY_CONNECTED:
            body = f"{ins} {op.output} {text} {_quant(op.out)}"
        else:
            sy, sx = op.stride_hw
            body = f"{ins} {op.output} {text} {_pad(op.padding)} {sx} {sy} {_quant(op.out)}"
    elif k is EthosNOpKind.POOL:
        (kh, kw), (sy, sx) = op.kernel_hw, op.stride_hw
        body = f"{ins} {op.output} {kw} {kh} {sx} {sy} {_pad(op.padding)} {'max' if op.pool_max else 'avg'}"
    elif k in (EthosNOpKind.ADD, EthosNOpKind.MUL, EthosNOpKind.LEAKY_RELU, EthosNOpKind.REQUANTIZE):
        alpha = f"{op.alpha!r} " if k is EthosNOpKind.LEAKY_RELU else ""
        body = f"{ins} {op.output} {alpha}{_quant(op.out)}"
    elif k is EthosNOpKind.RELU:
        body = f"{ins} {op.output} {op.relu_bounds[0]} {op.relu_bounds[1]}"
    elif k is EthosNOpKind.RESHAPE:
        body = f"{ins} {op.output} " + " ".join(str(d) for d in op.out.shape)
    elif k is EthosNOpKind.CONCAT:
        body = f"{len(op.inputs)} {ins} {op.output} {op.axis} {_quant(op.out)}"
    elif k is EthosNOpKind.PAD:
        body = f"{ins} {op.output} {_pad(op.padding)}"
    elif k is EthosNOpKind.RESIZE:
        h, w = op.out.shape[1:3]
        body = f"{ins} {op.output} {'bilinear' if op.resize_bilinear else 'nearest'} {h} {w} {_quant(op.out)}"
    else:  # SIGMOID, TANH, MEAN_XY
        body = f"{ins} {op.output}"
    return head + body + f" {_tensor(op.out)}"


def request_text(network: Network, variant: EthosNVariant, sram_bytes: int) -> tuple[str, bytes]:
    """The bridge's request for ``network`` and the blob of weights and biases it points into."""
    lines = ["ethosn-bridge 1", f"variant {variant.value}", f"sram_bytes {sram_bytes}", "current 0", "end"]
    lines += [f"input -1 {operand} {_tensor(t)}" for operand, t in network.inputs]
    blob: list[bytes] = []
    offset = [0]
    for layer in network.layers:
        lines += [_op_line(layer.index, op, blob, offset) for op in layer.ops]
    lines += [f"output -1 {operand}" for operand in network.outputs]
    return "\n".join(lines) + "\n", b"".join(blob)


# --------------------------------------------------------------------------- running it


def run_bridge(lib: SupportLibrary, network: Network, variant: EthosNVariant, sram_bytes: int,
               timeout_s: float = ESTIMATOR_TIMEOUT_S) -> dict[str, Any]:
    """Arm's estimate of ``network``: the bridge's JSON (passes, issues, not_supported, library_version)."""
    exe = bridge_executable(lib)
    text, blob = request_text(network, variant, sram_bytes)
    share = machine_share_bytes()

    def limit() -> None:  # the estimator's search can grow large on big networks: bound it
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (share, share))

    with tempfile.TemporaryDirectory(prefix="ethos-n-bridge-") as tmp:
        req, data = Path(tmp) / "request.txt", Path(tmp) / "weights.bin"
        req.write_text(text, encoding="utf-8")
        data.write_bytes(blob)
        try:
            proc = subprocess.run([str(exe), str(req), str(data)], capture_output=True, encoding="utf-8",
                                  errors="replace", timeout=timeout_s, stdin=subprocess.DEVNULL, preexec_fn=limit,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ToolError(f"Arm's Ethos-N estimator did not finish within {timeout_s:g} s") from None
    message = " ".join(proc.stderr.split())[:400] or f"exit status {proc.returncode}"
    if proc.returncode == 3:
        raise ToolError(f"Arm's Ethos-N support library {lib.version} refused the network for {variant.value}: "
                        f"{message}")
    if proc.returncode != 0:
        raise ToolError(f"the Ethos-N bridge failed ({message})")
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise ToolError("the Ethos-N bridge printed something that is not JSON") from None
    if result.get("library_version") != lib.version:
        raise InputError(f"{lib.library}: the library reports version {result.get('library_version')} but its "
                         f"headers say {lib.version}")
    return result
