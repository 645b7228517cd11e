"""``finetune --strategy`` / ``quantize --strategy``: the clustering fine-tune and cluster-preserving QAT under
``tf.distribute.MirroredStrategy`` over two logical CPU devices, against the default strategy.

The CPU is split into two logical devices before TensorFlow starts, which only a fresh process can do:
the commands run in a subprocess (real tfmot, real Keras, real converter and LiteRT)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_training import digits_convnet, training_dir  # noqa: F401  (pytest fixtures)

from toolchain.core.errors import ConfigError
from toolchain.training.clustering import FinetuneConfig
from toolchain.training.distribute import Strategy, check_tf_config
from toolchain.training.quantize import QuantizeConfig

pytestmark = pytest.mark.tf
REPO = Path(__file__).resolve().parents[1]
K = 8

_TWO_CPUS = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from toolchain.cli import main
model, out = sys.argv[1], sys.argv[2]
common = ["--data", "digits", "--clusters", sys.argv[3], "--epochs", "1", "--quiet"]
for strategy in ("default", "mirrored"):
    rc = main(["finetune", model, "-o", f"{out}/{strategy}.keras", "--strategy", strategy, *common])
    if rc:
        sys.exit(rc)
sys.exit(main(["quantize", f"{out}/mirrored.keras", "--data", "digits", "-o", f"{out}/mirrored.tflite",
               "--cluster-preserving-qat", "--strategy", "mirrored", "--quiet"]))
"""


def _summary(path: Path) -> dict:
    return json.loads(Path(str(path) + ".json").read_text())


@pytest.mark.slow
def test_mirrored_over_two_cpus_clusters_and_learns_like_the_default_strategy(digits_convnet, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("TF_CONFIG", None)
    run = subprocess.run([sys.executable, "-c", _TWO_CPUS, str(digits_convnet), str(tmp_path), str(K)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    default, mirrored = _summary(tmp_path / "default.keras"), _summary(tmp_path / "mirrored.keras")
    assert default["config"]["strategy"] == "default" and default["result"]["replicas"] == 1
    assert mirrored["config"]["strategy"] == "mirrored" and mirrored["result"]["replicas"] == 2
    # the same layers clustered, each to exactly K values (a channel may use fewer), under both strategies
    for summary in (default, mirrored):
        layers = summary["result"]["clustered_layers"]
        assert {r["name"]: r["distinct_values"] for r in layers} == {"conv1": K, "conv2": K, "dense": K}
        assert all(r["max_distinct_values_per_channel"] <= K for r in layers)
    # accuracy within noise: three standard errors of the difference of two accuracies on this test split
    n, p = default["result"]["test_samples"], default["result"]["accuracy_after"]
    assert p > 0.85
    assert abs(mirrored["result"]["accuracy_after"] - p) <= 3 * math.sqrt(2 * p * (1 - p) / n) + 1 / n
    # cluster-preserving QAT under the same strategy keeps at most K values per channel after conversion
    q = _summary(tmp_path / "mirrored.tflite")
    assert q["config"]["strategy"] == "mirrored" and q["result"]["qat_float_accuracy"] is not None
    assert q["result"]["int8_accuracy"] > 0.85
    assert all(w["max_distinct_values_per_channel"] <= K for w in q["result"]["weight_tensors"])


def test_strategy_config_keys_and_flags():
    assert FinetuneConfig.from_dict({"strategy": "mirrored"}).strategy is Strategy.MIRRORED
    assert FinetuneConfig().to_dict()["strategy"] == "default"
    with pytest.raises(ConfigError, match=r"strategy"):
        FinetuneConfig.from_dict({"strategy": "tpu"})
    with pytest.raises(ConfigError, match=r"^strategy must be one of default, mirrored, multiworker, got 'tpu'$"):
        FinetuneConfig(strategy="tpu")  # type: ignore[arg-type]
    # QAT's strategy counts only with QAT, like the other QAT settings
    assert "strategy" not in QuantizeConfig(strategy="mirrored").to_dict()  # type: ignore[arg-type]
    assert QuantizeConfig(cluster_preserving_qat=True, strategy="mirrored").to_dict()["strategy"] == "mirrored"


def test_deploy_config_strategy_reaches_qat_unless_quantize_sets_its_own():
    from toolchain.pipeline.config import config_from_mapping

    cfg = config_from_mapping({"finetune": {"strategy": "mirrored"}}, 8)
    assert cfg.finetune["strategy"] == "mirrored" and cfg.quantize["strategy"] == "mirrored"
    cfg = config_from_mapping({"finetune": {"strategy": "mirrored"}, "quantize": {"strategy": "default"}}, 8)
    assert cfg.quantize["strategy"] == "default"
    assert "strategy" not in config_from_mapping({}, 8).quantize


@pytest.mark.parametrize("value, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG needs "cluster"'),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "is not one of its cluster"),
])
def test_a_malformed_tf_config_is_a_config_error(monkeypatch, value, message):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ConfigError, match=message):
        check_tf_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}')
    assert check_tf_config()["task"]["index"] == 1
