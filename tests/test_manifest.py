"""Which source files a stage's key covers: editing training code redoes training stages only, and back."""
from __future__ import annotations

from conftest import REPO

from toolchain.pipeline.manifest import (
    runs_in_post_training_stages,
    runs_in_training_stages,
    source_digest,
)

SOURCES = sorted(p.relative_to(REPO / "toolchain").as_posix() for p in (REPO / "toolchain").rglob("*.py"))


def test_each_side_covers_real_files():
    training_only = [r for r in SOURCES if runs_in_training_stages(r) and not runs_in_post_training_stages(r)]
    post_only = [r for r in SOURCES if runs_in_post_training_stages(r) and not runs_in_training_stages(r)]
    both = [r for r in SOURCES if runs_in_training_stages(r) and runs_in_post_training_stages(r)]
    assert "training/finetune.py" in training_only and "training/quantize.py" in training_only
    assert "pipeline/keras_stages.py" in training_only
    assert "rewrite/recluster.py" in post_only and "targets/compile.py" in post_only
    assert {"tflite/model_io.py", "tflite/accuracy.py", "training/datasets.py", "core/fileio.py"} <= set(both)
    assert all(runs_in_training_stages(r) or runs_in_post_training_stages(r) for r in SOURCES)


def test_the_two_digests_differ_and_are_stable():
    assert source_digest(True) != source_digest(False)
    assert source_digest(True) == source_digest(True)
