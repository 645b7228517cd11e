"""Is the printed agreement the agreement on data the rewrite never saw? Held-back check against a test split.

For each trained Fashion-MNIST net of benchmarks/output_aware_models.py (cached under build/bench/) and
K in (8, 16), ``toolchain recluster --calibration cal.npz`` (the Python API's ``rewrite_model``, the
same job) is given 1,536 seeded training images: the output-aware fit uses 512 of them and the rest are
held back for the check, whose top-1 agreement with the int8 model is what the toolchain prints. It is
compared with the agreement on the full 10,000-image test split (never seen by anything), and with what
the check printed before it held samples back (the first 32 samples the fit used: in-sample), and what
seeded random inputs show (weak evidence). Target: printed within 0.01 of the test split.
Run: .venv/bin/python benchmarks/verdict.py [NET ...]   (writes benchmarks/results/verdict.json)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_result
from output_aware_models import Net, paths, prepare
from tables import verdict_table

from toolchain.rewrite.calibration_set import CheckSet
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.job import ReclusterJob, job_data, run_job
from toolchain.rewrite.result import Evidence
from toolchain.rewrite.verify import VerifyOptions, verify, verify_on
from toolchain.tflite.accuracy import predict_tflite
from toolchain.training.datasets import load_dataset

CALIBRATION_IMAGES = 1536
SEED = 0
CLUSTERS = (8, 16)
TARGET_GAP = 0.01
OLD_CHECK_SAMPLES = 32  # what the check ran on before: the first calibration samples, the same the fit used


def _classes(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    return np.argmax(predict_tflite(model_bytes, x), axis=1)


def run_net(net: Net, data, cal_path: Path) -> list[dict]:
    prepare(net, data, with_tfmot=False)
    int8 = paths(net)["int8"].read_bytes()
    ref_test = _classes(int8, data.x_test)
    rows = []
    for k in CLUSTERS:
        job = ReclusterJob(ReclusterConfig(clusters=k), calibration_file=cal_path)
        t0 = time.perf_counter()
        rewritten, report = run_job(int8, job)
        fit_s = time.perf_counter() - t0
        ver = report.verification
        new_test = _classes(rewritten, data.x_test)
        split = job_data(int8, job)  # the same split run_job made: the fit's samples, for the in-sample figure
        in_sample = verify_on(int8, rewritten, CheckSet(split.fit.rows[:OLD_CHECK_SAMPLES], "in-sample",
                                                        Evidence.IN_SAMPLE))
        random = verify(int8, rewritten, None, VerifyOptions())
        test_agreement = float(np.mean(ref_test == new_test))
        row = {
            "model": net.value, "clusters": k, "fit_s": round(fit_s, 1),
            "printed_top1_agreement": ver.agreement.top1_agreement, "printed_on": ver.inputs,
            "printed_samples": ver.agreement.samples, "fit_samples": report.calibration.samples,
            "test_top1_agreement": test_agreement, "test_samples": len(data.x_test),
            "gap": round(abs(ver.agreement.top1_agreement - test_agreement), 6),
            "in_sample_top1_agreement": in_sample.agreement.top1_agreement, "in_sample_samples": OLD_CHECK_SAMPLES,
            "random_top1_agreement": random.agreement.top1_agreement,
            "random_top1_not_measurable": random.agreement.top1_not_measurable,
            "accuracy_int8": float(np.mean(ref_test == data.y_test)),
            "accuracy_after": float(np.mean(new_test == data.y_test)),
        }
        rows.append(row)
        print(f"  {net.value} K={k}: printed {row['printed_top1_agreement']:.4f} on {ver.inputs}, test split "
              f"{test_agreement:.4f} (gap {row['gap']:.4f}); in-sample {row['in_sample_top1_agreement']:.4f}; random "
              f"{row['random_top1_agreement']}", flush=True)
    return rows


def main() -> int:
    nets = [Net(a) for a in sys.argv[1:]] or [Net.MOBILENET_V2, Net.DS_CNN, Net.CONVNET_BN]
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    data = load_dataset("fashion-mnist")
    idx = np.sort(np.random.default_rng(SEED).choice(len(data.x_train), CALIBRATION_IMAGES, replace=False))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        cal = Path(tmp) / "cal.npz"
        np.savez(cal, x=np.asarray(data.x_train[idx], np.float32))
        for net in nets:
            rows += run_net(net, data, cal)
    doc = {
        "benchmark": "verdict",
        "description": __doc__.splitlines()[0],
        "command": ".venv/bin/python benchmarks/verdict.py " + " ".join(n.value for n in nets),
        "dataset": {"name": "fashion-mnist", "test_images": len(data.x_test),
                    "calibration": f"{CALIBRATION_IMAGES} seeded images (seed {SEED}) of the 60,000-image training "
                                   "split"},
        "target_gap": TARGET_GAP,
        "rows": rows,
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
                                "note": "shared with other work: times are upper bounds of an idle machine's"},
        "total_s": round(time.perf_counter() - t0, 1),
    }
    write_result("verdict", doc)
    print(verdict_table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
