"""Markdown tables from the benchmarks' results JSON documents: one pure function per table.

The benchmark scripts print their tables with these functions and benchmarks/render_docs.py
puts the same text between the ``<!-- generated: NAME -->`` markers of README.md and docs/,
so a table looks the same printed and in the docs and is never typed by hand.
Standard library only (no TensorFlow, no Vela, no toolchain import): rendering every
table takes milliseconds.

One module per benchmark family; this package names every table function once, so callers
write ``tables.NAME`` whichever module holds it:

  markdown     the shared pieces: the table, cell escaping, number formats
  fashion      compression on Fashion-MNIST, the converged base models
  rewriter     solver speed, restoring the cluster count, the output-aware fit, the held-back check
  scale        the output-aware fit at MobileNet scale, before and after
  deploy       `make deploy` time and output, compile speed, real architectures, `make sweep` scaling
  distributed  the sweep on the default executor and on Ray, the fine-tune under tf.distribute strategies
  robustness   fuzzing, bad inputs
  rfc          the clustering RFC's table, the cascade, centroid initialisation
  rate         rate-distortion: accuracy against Vela's encoded weights, the planner's targets
  ethos_n      the Ethos-N78 model against Arm's own estimator
  summary      the README's results summary, the machines each results file was measured on
  wild         a float .tflite through ai-edge-quantizer, the corpus of third-party models
"""
from __future__ import annotations

from .deploy import (
    compile_speed_table,
    corpus_table,
    deploy_models,
    deploy_output,
    deploy_time_runs,
    deploy_time_stages,
    deploy_time_verdict,
    stage_is_training,
    sweep_scaling_table,
)
from .distributed import (
    finetune_strategies_table,
    sweep_executors_costs,
    sweep_executors_scale,
    sweep_executors_table,
)
from .ethos_n import (
    ethos_n_calibration_table,
    ethos_n_calibration_verdict,
    ethos_n_networks_table,
    ethos_n_variants_table,
)
from .fashion import (
    base_models_table,
    fashion_mnist_cost,
    fashion_mnist_largest_layer,
    fashion_mnist_models,
    fashion_mnist_notes,
    fashion_mnist_table,
    fashion_mnist_targets,
    fashion_mnist_verdict,
)
from .rate import (
    rate_distortion_summary,
    rate_distortion_table,
    rate_distortion_targets,
    rate_distortion_timing,
)
from .rewriter import (
    output_aware_summary,
    output_aware_table,
    recluster_speed_table,
    restore_clusters_table,
    restore_clusters_verdict,
    verdict_table,
)
from .rfc import (
    cascade_table,
    cascade_verdict,
    centroid_init_table,
    rfc_mapping_table,
    rfc_results_table,
    rfc_vela_table,
    rfc_vela_verdict,
)
from .robustness import bad_inputs_table, fuzz_figures, fuzz_input_figures
from .scale import fit_speed_table, fit_speed_verdict
from .summary import results_machines, results_summary
from .wild import float_tflite_table, float_tflite_verdict, wild_corpus_table

__all__ = [
    "bad_inputs_table", "base_models_table", "cascade_table", "cascade_verdict", "centroid_init_table",
    "compile_speed_table", "corpus_table", "deploy_models", "deploy_output", "deploy_time_runs",
    "deploy_time_stages", "deploy_time_verdict", "ethos_n_calibration_table", "ethos_n_calibration_verdict",
    "ethos_n_networks_table", "ethos_n_variants_table", "fashion_mnist_cost", "fashion_mnist_largest_layer",
    "fashion_mnist_models", "fashion_mnist_notes", "fashion_mnist_table", "fashion_mnist_targets",
    "fashion_mnist_verdict", "finetune_strategies_table", "fit_speed_table", "fit_speed_verdict",
    "float_tflite_table", "float_tflite_verdict", "fuzz_figures", "fuzz_input_figures", "output_aware_summary", "output_aware_table",
    "rate_distortion_summary", "rate_distortion_table", "rate_distortion_targets", "rate_distortion_timing",
    "recluster_speed_table", "restore_clusters_table", "restore_clusters_verdict", "results_machines",
    "results_summary", "rfc_mapping_table", "rfc_results_table", "rfc_vela_table", "rfc_vela_verdict",
    "stage_is_training", "sweep_executors_costs", "sweep_executors_scale", "sweep_executors_table",
    "sweep_scaling_table", "verdict_table", "wild_corpus_table",
]
