"""``toolchain quantize MODEL --data DATA -o OUT.tflite``: full-integer int8 conversion.

TensorFlow is imported inside ``run`` only.
"""
from __future__ import annotations

import argparse

from .common import add_output_options, print_json_file, say, training_output
from .finetune import DATA_HELP

HELP = "convert a Keras model to full-int8 .tflite and measure it with LiteRT (training extra)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras classifier, .keras or .h5 (e.g. the output of 'toolchain finetune')")
    p.add_argument("--data", required=True, metavar="DATA", help=DATA_HELP)
    p.add_argument("--trust-model-code", action="store_true",
                   help="load a model holding Lambda layers or custom objects: Python code that runs on loading")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="int8 model, .tflite; a JSON summary is written to OUT.json")
    p.add_argument("--representative-samples", type=int, default=200, metavar="N",
                   help="calibration samples drawn (seeded) from the training split (default 200)")
    p.add_argument("--per-tensor", action="store_true",
                   help="one scale per weight tensor instead of per output channel (for comparison)")
    p.add_argument("--cluster-preserving-qat", action="store_true",
                   help="short quantization-aware fine-tune with tfmot's cluster-preserving scheme first")
    p.add_argument("--qat-epochs", type=int, default=1, metavar="N", help="QAT epochs (default 1)")
    p.add_argument("--qat-learning-rate", type=float, default=1e-5, metavar="LR",
                   help="QAT Adam learning rate (default 1e-5)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="QAT batch size (default 32)")
    p.add_argument("--preserve-sparsity", action="store_true", help="QAT keeps zero weights at zero")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration draw and of QAT (default 0)")
    p.add_argument("--epoch-lines", action="store_true", help="one line per QAT epoch instead of Keras' progress bar")
    add_output_options(p, "print the JSON summary (OUT.json) instead of the text summary; progress goes to stderr")


def run(args: argparse.Namespace) -> int:
    import time

    from ..core.paths import check_paths
    from ..training.datasets import load_dataset
    from ..training.finetune import summary_path
    from ..training.quantize import QuantizeConfig, quantize_file
    from ..training.tf_env import require_training_stack

    t0 = time.perf_counter()
    check_paths(inputs=[args.model, args.data if args.data.lower().endswith(".npz") else None],
                outputs=[args.output, summary_path(args.output)])
    config = QuantizeConfig(
        representative_samples=args.representative_samples,
        per_tensor=args.per_tensor,
        cluster_preserving_qat=args.cluster_preserving_qat,
        qat_epochs=args.qat_epochs,
        qat_learning_rate=args.qat_learning_rate,
        batch_size=args.batch_size,
        preserve_sparsity=args.preserve_sparsity,
        seed=args.seed,
    )
    require_training_stack()
    data = load_dataset(args.data)
    with training_output(args):
        result = quantize_file(args.model, data, args.output, config,
                               quiet=args.epoch_lines or args.quiet or args.json, trust_model_code=args.trust_model_code)
    if args.json:
        print_json_file(summary_path(args.output))
    qat = f", QAT float {result.qat_float_accuracy:.2%}" if result.qat_float_accuracy is not None else ""
    lines = [(f"accuracy on the test split ({result.test_samples} samples): float {result.float_accuracy:.2%}{qat}, "
              f"int8 {result.int8_accuracy:.2%} (LiteRT)")]
    for w in result.weight_tensors:
        lines.append(f"  {w.name} ({w.op}, {w.granularity}): {w.distinct_values} distinct int8 values, "
                     f"at most {w.max_distinct_values_per_channel} per channel")
    lines.append(f"wrote {args.output} ({result.model_bytes} bytes) and {summary_path(args.output)} "
                 f"in {time.perf_counter() - t0:.1f} s")
    say(args, "\n".join(lines))
    return 0
