"""benchmarks/configs/*.toml: every file is a valid deploy pipeline config, and its [recluster] rewrites the
tensors its [finetune] clusters, at the same K (what benchmarks/rfc_table.py relies on). No TensorFlow."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from toolchain.pipeline.config import load_pipeline_config
from toolchain.training.clustering import FinetuneConfig

CONFIGS = sorted((REPO / "benchmarks" / "configs").glob("*.toml"))


def test_there_is_a_config_per_rfc_row_and_cascade_point():
    names = {p.stem for p in CONFIGS}
    assert {"rfc_convnet_full_32", "rfc_ds_cnn_full_32", "cascade_k16", "cascade_k16_prune50"} <= names
    assert len([n for n in names if n.startswith("rfc_")]) == 7


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_recluster_matches_finetune(path: Path):
    cfg = load_pipeline_config(path, None)
    ft = FinetuneConfig.from_dict(cfg.finetune, str(path))
    rc = cfg.recluster
    assert ft.centroid_init.value == "linear"  # as the RFC
    assert cfg.data.train_samples == 20_000 and cfg.data.test_samples is None  # accuracy on the full test set
    assert rc.include_depthwise is False  # tfmot leaves depthwise kernels: so does the rewrite
    assert rc.clusters == ft.clusters
    # each layer rule has the tensor rule '*/<layer>/*' with the same K (or skip), in the same order
    expected = [("*" if r.pattern == "*" else f"*/{r.pattern}/*", r.clusters) for r in ft.layer_rules]
    assert [(r.pattern, r.clusters) for r in rc.rules] == expected
    if ft.prune_sparsity is not None:
        assert ft.preserve_sparsity and rc.keep_zero
    if cfg.quantize.get("cluster_preserving_qat"):
        assert ft.prune_sparsity is None or cfg.quantize.get("preserve_sparsity")
