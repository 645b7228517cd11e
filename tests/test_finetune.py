"""toolchain finetune: tfmot clustering + fine-tuning on real digits, config, warnings, bad input."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_training import (  # noqa: F401  (pytest fixtures)
    CLUSTERS,
    clustered_digits,
    digits_convnet,
    run_cli,
    training_dir,
)

from toolchain.core.errors import ConfigError, ExitCode
from toolchain.training.clustering import (
    CentroidInit,
    FinetuneConfig,
    LayerRule,
    parse_layer_rule,
)


def _kernels(path: Path) -> dict[str, np.ndarray]:
    from toolchain.training.keras_io import load_keras_model

    model = load_keras_model(path)
    return {l.name: np.asarray(l.kernel) for l in model.layers if hasattr(l, "kernel")}


def _summary(path: Path) -> dict:
    return json.loads(Path(str(path) + ".json").read_text())


def _one_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == ExitCode.BAD_INPUT
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# --- configuration (no TensorFlow) ---------------------------------------------------------------------


def test_config_file_table_and_defaults():
    cfg = FinetuneConfig.from_dict({
        "version": 1, "clusters": 8, "centroid_init": "density", "per_channel": True, "epochs": 3,
        "learning_rate": 0.001, "batch_size": 16, "seed": 7,
        "layers": [{"pattern": "conv*", "clusters": 4}, {"pattern": "head", "skip": True}],
    })
    assert cfg.centroid_init is CentroidInit.DENSITY and cfg.per_channel and cfg.seed == 7
    assert cfg.layer_rules == (LayerRule("conv*", 4), LayerRule("head", None))
    assert cfg.clusters_for("conv2") == (4, LayerRule("conv*", 4))
    assert cfg.clusters_for("head") == (None, LayerRule("head", None))
    assert cfg.clusters_for("dense") == (8, None)
    assert FinetuneConfig().to_dict()["centroid_init"] == "kmeans++"


def test_first_matching_rule_wins():
    cfg = FinetuneConfig(layer_rules=(LayerRule("conv1", None), LayerRule("conv*", 4)))
    assert cfg.clusters_for("conv1")[0] is None and cfg.clusters_for("conv12")[0] == 4


@pytest.mark.parametrize("raw, message", [
    ({"clusters": 1}, r"clusters: .*minimum of 2|less than the minimum"),
    ({"clusters": 16, "colour": "red"}, r"Additional properties are not allowed \('colour'"),
    ({"centroid_init": "kmeans"}, r"centroid_init"),
    ({"layers": [{"pattern": "a", "clusters": 4, "skip": True}]}, r"layers/0"),
    ({"layers": [{"pattern": "a"}]}, r"layers/0"),
    ({"epochs": -1}, r"epochs"),
    ({"learning_rate": 0}, r"learning_rate"),
    ({"version": 2}, r"version"),
])
def test_config_file_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig.from_dict(raw)


def test_config_value_errors():
    with pytest.raises(ConfigError, match=r"from 3 to 256 with sparsity preservation"):
        FinetuneConfig(clusters=2, preserve_sparsity=True)
    with pytest.raises(ConfigError, match=r"clusters of layer rule 'x' must be an integer from 2"):
        FinetuneConfig(layer_rules=(LayerRule("x", 1),))
    with pytest.raises(ConfigError, match=r"batch size"):
        FinetuneConfig(batch_size=0)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, float("nan"), True])
def test_prune_sparsity_must_be_a_fraction(value):
    with pytest.raises(ConfigError, match="prune sparsity"):
        FinetuneConfig(prune_sparsity=value)


def test_pruning_implies_sparsity_preservation():
    cfg = FinetuneConfig.from_dict({"prune": 0.5, "clusters": 8})
    assert cfg.prune_sparsity == 0.5 and cfg.preserve_sparsity and cfg.to_dict()["prune"] == 0.5
    with pytest.raises(ConfigError, match="from 3 to 256 with sparsity preservation"):
        FinetuneConfig(prune_sparsity=0.5, clusters=2)
    with pytest.raises(ConfigError, match="prune"):
        FinetuneConfig.from_dict({"prune": 1.5})


def test_layer_rule_syntax():
    assert parse_layer_rule("conv*=8") == LayerRule("conv*", 8)
    assert parse_layer_rule("head=skip") == LayerRule("head", None)
    for bad in ("conv1", "=4", "conv1=many"):
        with pytest.raises(ConfigError, match="--layer"):
            parse_layer_rule(bad)


def test_commands_import_no_tensorflow():
    code = (
        "import sys\n"
        "import toolchain.commands.finetune, toolchain.commands.quantize, toolchain.commands.example\n"
        "import toolchain.training.finetune, toolchain.training.quantize, toolchain.training.example\n"
        "import toolchain.tflite.accuracy, toolchain.training.datasets\n"
        "from toolchain.cli import build_parser; build_parser().parse_args(['finetune', 'm.keras', '--data', 'x', '-o', 'o.keras'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization')]\n"
        "assert not bad, bad[:3]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- real clustering ---------------------------------------------------------------------------------------


@pytest.mark.tf
def test_clustered_layers_hold_at_most_k_values(clustered_digits, digits_convnet):
    kernels = _kernels(clustered_digits)
    summary = _summary(clustered_digits)
    reported = {l["name"]: l for l in summary["result"]["clustered_layers"]}
    assert set(reported) == {"conv1", "conv2", "dense"}
    for name, layer in reported.items():
        distinct = np.unique(kernels[name]).size
        assert distinct <= CLUSTERS
        assert distinct == layer["distinct_values"]
    # the input had far more, and the model still classifies (1 epoch of fine-tuning)
    assert all(np.unique(k).size > 100 for k in _kernels(digits_convnet).values())
    result = summary["result"]
    assert result["accuracy_before"] > 0.9 and result["accuracy_after"] > result["accuracy_before"] - 0.03


@pytest.mark.tf
def test_summary_is_deterministic_and_rerun_is_byte_identical(clustered_digits, digits_convnet, tmp_path):
    summary = _summary(clustered_digits)
    text = json.dumps(summary)
    assert not re.search(r"elapsed|time|date|/tmp/", text), "no times or absolute paths in the summary"
    assert summary["input_model"]["file"] == "digits_convnet.keras"
    assert summary["config"]["clusters"] == CLUSTERS and summary["data"]["name"] == "digits"
    again = tmp_path / "again.keras"
    rc, _ = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(again),
                     "--clusters", str(CLUSTERS), "--epochs", "1", "--quiet"])
    assert rc == 0
    assert again.read_bytes() == clustered_digits.read_bytes()
    second = _summary(again)
    second["output_model"]["file"] = summary["output_model"]["file"]
    assert second == summary


@pytest.mark.tf
def test_config_file_and_flags_layer_rules(digits_convnet, tmp_path):
    cfg = tmp_path / "ft.toml"
    cfg.write_text('clusters = 8\nepochs = 0\n[[layers]]\npattern = "dense"\nclusters = 4\n'
                   '[[layers]]\npattern = "conv1"\nskip = true\n')
    out = tmp_path / "rules.keras"
    rc, stdout = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(out), "--config", str(cfg),
                          "--layer", "conv2=6"])
    assert rc == 0
    before, after = _kernels(digits_convnet), _kernels(out)
    assert np.unique(after["dense"]).size <= 4
    assert np.unique(after["conv2"]).size <= 6  # the flag's rule comes before the file's
    np.testing.assert_array_equal(after["conv1"], before["conv1"])  # skipped: untouched (0 epochs)
    summary = _summary(out)
    assert summary["result"]["skipped_layers"] == [
        {"name": "conv1", "layer_type": "Conv2D", "reason": "skipped by a layer rule"}]
    assert summary["config"]["layers"][0] == {"pattern": "conv2", "clusters": 6}
    assert "conv1 (Conv2D): not clustered, skipped by a layer rule" in stdout


@pytest.mark.tf
@pytest.mark.parametrize("init", ["linear", "kmeans++", "density", "random"])
def test_every_centroid_init(digits_convnet, tmp_path, init):
    out = tmp_path / "m.keras"
    rc, _ = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(out), "--clusters", "5",
                     "--centroid-init", init, "--epochs", "0"])
    assert rc == 0
    assert all(np.unique(k).size <= 5 for k in _kernels(out).values())
    assert _summary(out)["config"]["centroid_init"] == init


@pytest.mark.tf
def test_per_channel_clusters_conv2d_without_bias(digits_convnet, tmp_path):
    """tfmot's own check skips bias-less Conv2D under per-channel clustering; we must not."""
    from toolchain.training.keras_io import load_keras_model
    from toolchain.training.tf_env import import_tfmot

    tfmot = import_tfmot()
    conv1 = load_keras_model(digits_convnet).get_layer("conv1")
    assert not conv1.use_bias
    with pytest.warns(UserWarning, match="does not have enough weights"):
        untouched = tfmot.clustering.keras.cluster_weights(conv1, number_of_clusters=4, cluster_per_channel=True)
    assert untouched is conv1, "tfmot fixed its per-channel bug: the workaround in finetune.py can go"

    out = tmp_path / "pc.keras"
    rc, stdout = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(out), "--clusters", "4",
                          "--per-channel", "--epochs", "0"])
    assert rc == 0
    kernels = _kernels(out)
    for name in ("conv1", "conv2"):
        k = kernels[name].reshape(-1, kernels[name].shape[-1])
        per_channel = [np.unique(k[:, c]).size for c in range(k.shape[1])]
        assert max(per_channel) <= 4
        assert np.unique(k).size > 4  # channels have their own centroids
    assert np.unique(kernels["dense"]).size <= 4  # per-channel applies to Conv2D only
    layers = {l["name"]: l for l in _summary(out)["result"]["clustered_layers"]}
    assert layers["conv1"]["per_channel"] and not layers["dense"]["per_channel"]
    assert "at most 4 per channel" in stdout


@pytest.mark.tf
def test_unclusterable_layers_are_skipped_with_a_warning(tmp_path, capsys):
    from toolchain.training.keras_io import save_keras_model
    from toolchain.training.tf_env import import_keras

    keras = import_keras()
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.PReLU(name="prelu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, name="frozen", trainable=False)(x)
    out = keras.layers.Dense(10, name="head")(x)
    src = tmp_path / "odd.keras"
    save_keras_model(keras.Model(inp, out), src)
    dst = tmp_path / "odd_k8.keras"
    rc, _ = run_cli(["finetune", str(src), "--data", "digits", "-o", str(dst), "--clusters", "8", "--epochs", "0"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "warning: layer 'dw' (DepthwiseConv2D) is not clustered: tfmot does not cluster depthwise kernels" in err
    assert "warning: layer 'prelu' (PReLU) is not clustered: tfmot cannot cluster this layer type" in err
    assert "warning: layer 'frozen' (Dense) is not clustered: the layer is frozen (trainable=False)" in err
    skipped = {s["name"]: s["reason"] for s in _summary(dst)["result"]["skipped_layers"]}
    assert set(skipped) == {"dw", "prelu", "frozen"}
    kernels = _kernels(dst)
    assert np.unique(kernels["stem"]).size <= 8 and np.unique(kernels["head"]).size <= 8


@pytest.mark.tf
def test_sparsity_preservation_keeps_zeros(digits_convnet, tmp_path):
    from toolchain.training.keras_io import load_keras_model, save_keras_model

    model = load_keras_model(digits_convnet)
    dense = model.get_layer("dense")
    kernel, bias = dense.get_weights()
    pruned = np.where(np.abs(kernel) < np.median(np.abs(kernel)), 0.0, kernel).astype(np.float32)
    dense.set_weights([pruned, bias])
    src = tmp_path / "pruned.keras"
    save_keras_model(model, src)
    dst = tmp_path / "pruned_k8.keras"
    rc, _ = run_cli(["finetune", str(src), "--data", "digits", "-o", str(dst), "--clusters", "8",
                     "--preserve-sparsity", "--epochs", "1", "--quiet"])
    assert rc == 0
    after = _kernels(dst)["dense"]
    assert np.all(after[pruned == 0] == 0)
    assert np.unique(after).size <= 8 and 0.0 in np.unique(after)


@pytest.mark.tf
def test_prune_then_cluster_then_int8_keeps_the_zeros(digits_convnet, tmp_path):
    """The Deep Compression cascade: half of each clustered kernel pruned, clustered with its zeros kept,
    converted to int8 and reclustered: the zeros survive every step."""
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.tflite.graph import find_weight_tensors, tensor_values
    from toolchain.tflite.model_io import read_model

    dst = tmp_path / "pruned_k8.keras"
    rc, out = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(dst), "--clusters", "8",
                       "--prune", "0.5", "--prune-epochs", "2", "--epochs", "1", "--epoch-lines"])
    assert rc == 0 and "pruned to" in out
    summary = json.loads((tmp_path / "pruned_k8.keras.json").read_text())
    assert summary["config"]["prune"] == 0.5 and summary["config"]["preserve_sparsity"] is True
    pruned = {p["name"]: p["sparsity"] for p in summary["result"]["pruned_layers"]}
    assert set(pruned) == {"conv1", "conv2", "dense"}
    kernels = _kernels(dst)
    for name, sparsity in pruned.items():
        zeros = float(np.mean(kernels[name] == 0.0))
        # the polynomial schedule reaches the target at its last step; clustering keeps every zero
        assert 0.45 <= sparsity <= 0.55 and zeros >= sparsity - 1e-9, (name, sparsity, zeros)
        assert np.unique(kernels[name]).size <= 8
    tfl = tmp_path / "pruned_k8.tflite"
    rc, _ = run_cli(["quantize", str(dst), "--data", "digits", "-o", str(tfl), "--quiet"])
    assert rc == 0
    model = read_model(tfl.read_bytes())
    rewritten, _ = recluster_model(tfl.read_bytes(), ReclusterConfig(clusters=8))
    after = read_model(rewritten)
    for w in find_weight_tensors(model):
        q = tensor_values(model, model.subgraphs[0].tensors[w.tensor_index])
        r = tensor_values(after, after.subgraphs[0].tensors[w.tensor_index])
        assert np.mean(q == 0) >= 0.4, w.name  # int8 conversion keeps exact zeros at zero
        assert np.all(r[q == 0] == 0), w.name


@pytest.mark.tf
def test_progress_output_quiet_and_normal(digits_convnet, tmp_path):
    rc, quiet = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(tmp_path / "q.keras"),
                         "--epochs", "2", "--epoch-lines"])
    assert rc == 0
    epoch_lines = [l for l in quiet.splitlines() if l.startswith("epoch ")]
    assert [l.split(":")[0] for l in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert re.match(r"epoch 1/2: loss \d+\.\d{4}, train accuracy \d\.\d{4}, \d+\.\d s$", epoch_lines[0])
    assert "step" not in quiet
    rc, normal = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(tmp_path / "n.keras"),
                          "--epochs", "1"])
    assert rc == 0
    assert re.search(r"45/45 \[=+\]", normal) and "step" in normal  # Keras' own progress bar (45 batches)
    assert "accuracy on the test split (359 samples): before" in normal


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.tf
def test_bad_models_and_options_exit_2(capsys, tmp_path, digits_convnet):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 definitely not a keras archive")
    fake = tmp_path / "fake.keras"
    fake.write_text("hello")
    cfg = tmp_path / "bad.toml"
    cfg.write_text("clusters = 16\nwobble = 1\n")
    out = tmp_path / "o.keras"
    cases = [
        (["finetune", str(junk), "--data", "digits", "-o", str(out)], r"cannot load Keras model .*junk\.keras"),
        (["finetune", str(fake), "--data", "digits", "-o", str(out)], r"is not a Keras model: not a zip archive"),
        (["finetune", str(tmp_path / "m.onnx"), "--data", "digits", "-o", str(out)], r"expected a Keras model file"),
        (["finetune", str(tmp_path / "absent.keras"), "--data", "digits", "-o", str(out)], r"Keras model not found"),
        (["finetune", str(digits_convnet), "--data", "digits", "-o", str(out), "--config", str(cfg)],
         r"finetune config .*bad\.toml: invalid value at \(top level\): Additional properties"),
        (["finetune", str(digits_convnet), "--data", "digits", "-o", str(out), "--clusters", "1"], r"clusters must be"),
        (["finetune", str(digits_convnet), "--data", "digits", "-o", str(out), "--layer", "conv1"], r"--layer 'conv1'"),
        (["finetune", str(digits_convnet), "--data", "digits", "-o", str(tmp_path / "o.pt")], r"must end in \.keras or \.h5"),
        (["finetune", str(digits_convnet), "--data", "digits", "-o", str(digits_convnet)], r"is the input file"),
    ]
    original = digits_convnet.read_bytes()
    for argv, message in cases:
        line = _one_error(capsys, run_cli(argv)[0])
        assert re.search(message, line), (argv, line)
    assert not out.exists()
    assert digits_convnet.read_bytes() == original


@pytest.mark.tf
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_h5_in_and_out(digits_convnet, tmp_path):
    from toolchain.training.keras_io import load_keras_model

    h5 = tmp_path / "m.h5"
    load_keras_model(digits_convnet).save(h5)
    out = tmp_path / "m_k6.h5"
    rc, _ = run_cli(["finetune", str(h5), "--data", "digits", "-o", str(out), "--clusters", "6", "--epochs", "0"])
    assert rc == 0
    assert all(np.unique(k).size <= 6 for k in _kernels(out).values())


@pytest.mark.tf
def test_legacy_keras_switch_is_set_by_the_toolchain(digits_convnet, tmp_path):
    """From a clean environment the CLI itself selects Keras 2 before TensorFlow loads; a TF
    imported earlier without the switch is refused with a message saying what to do."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = tmp_path / "clean.keras"
    code = (
        "import os, sys\n"
        "from toolchain.cli import main\n"
        f"rc = main(['finetune', {str(digits_convnet)!r}, '--data', 'digits', '-o', {str(out)!r}, '--epochs', '0'])\n"
        "import tensorflow as tf\n"
        "assert rc == 0 and os.environ['TF_USE_LEGACY_KERAS'] == '1'\n"
        "assert tf.keras.__name__.startswith('tf_keras'), tf.keras.__name__\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.exists()
    code = (
        "import tensorflow\n"
        "from toolchain.core.errors import ToolError\n"
        "from toolchain.training.tf_env import import_keras\n"
        "try:\n"
        "    import_keras()\n"
        "except ToolError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert "set TF_USE_LEGACY_KERAS=1 before importing TensorFlow" in proc.stdout, proc.stderr[-2000:]
