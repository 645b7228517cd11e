"""Whole networks: the calibrated Ethos-N78 model against Arm's estimator (needs Arm's support library).

The calibration grid prices single layers; in a network Arm's compiler keeps tensors in SRAM between
layers, where its section search finds that cheaper, and the model runs the same search
(ethos_n.estimate_network, ethos_n_sections). This measures how far apart the two are on whole networks, per variant Arm's library estimates,
over the layers both run on the NPU, with the model's cascade and with every layer standing alone:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ethos_n_networks.py --library PATH [--mobilenet]

Networks: the test suite's small int8 models (made with the TFLite converter) and, with --mobilenet,
Keras' MobileNetV2-224 in int8 (random weights: sizes and cycles, not accuracy). Results:
benchmarks/results/ethos_n_networks.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import CACHE, RESULTS, machine, mobilenet_v2_int8

from toolchain.targets.ethos_n import estimate_network
from toolchain.targets.ethos_n_arm import arm_estimate
from toolchain.targets.ethos_n_bridge import find_support_library, run_bridge
from toolchain.targets.ethos_n_from_tflite import network_from_tflite
from toolchain.targets.ethos_n_variants import EthosNVariant
from toolchain.tflite.model_io import read_model

NAME = "ethos_n_networks"


def small_models() -> dict[str, Path]:
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import model_factory as mf

    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, build in (("conv_bn", lambda: mf.convert_int8(mf.conv_bn_model())),
                        ("depthwise", lambda: mf.convert_int8(mf.depthwise_model())),
                        ("pool_act", lambda: mf.convert_int8(mf.pool_act_model()))):
        path = CACHE / f"ethos_n_{name}_int8.tflite"
        if not path.exists():
            path.write_bytes(build())
        out[name] = path
    return out


def measure(lib, name: str, path: Path) -> list[dict]:
    net, _ = network_from_tflite(read_model(path.read_bytes()))
    rows = []
    for v in EthosNVariant:
        if not v.hardware.arm_estimates:
            continue
        sram = v.hardware.default_sram_bytes
        started = time.monotonic()
        model = estimate_network(net, v, sram)
        model_s = time.monotonic() - started
        alone = estimate_network(net, v, sram, sections=False, fuse_ple=False)
        started = time.monotonic()
        arm = arm_estimate(run_bridge(lib, net, v, sram))
        arm_s = time.monotonic() - started
        refused = {i for i, _ in arm.not_supported + arm.issues}
        both = [i for i, e in model.items() if e is not None and i not in refused]
        arm_cycles = sum(arm.layers[i].cycles for i in both if i in arm.layers)
        arm_weights = sum(arm.layers[i].weight_bytes for i in both if i in arm.layers)
        rows.append({
            "network": name, "variant": v.value, "layers": len(net.layers), "layers_compared": len(both),
            "arm_cycles": arm_cycles, "model_cycles": sum(model[i].cycles for i in both),
            "model_standalone_cycles": sum(alone[i].cycles for i in both),
            "arm_weight_bytes": arm_weights, "model_weight_bytes": sum(model[i].encoded_weight_bytes for i in both),
            "arm_network_io_cycles": arm.other_cycles, "model_time_s": round(model_s, 2), "arm_time_s": round(arm_s, 2),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", required=True, help="Arm's support library")
    ap.add_argument("--mobilenet", action="store_true", help="also Keras' MobileNetV2-224 (int8, random weights)")
    args = ap.parse_args()
    lib = find_support_library(args.library)
    models = small_models()
    if args.mobilenet:
        models["mobilenet_v2_224"] = mobilenet_v2_int8()
    rows = [r for name, path in models.items() for r in measure(lib, name, path)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": NAME, "machine": machine(), "support_library": lib.version, "driver_stack": lib.driver_stack,
           "rows": rows}
    (RESULTS / f"{NAME}.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
