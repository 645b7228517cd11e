"""``toolchain quantize MODEL --data NAME|FILE.npz -o FILE.tflite``: full-integer int8 conversion.

A Keras MODEL goes through the TF converter (TensorFlow, imported inside ``run`` only); a float
MODEL.tflite through ai-edge-quantizer with ``--calibration`` samples (toolchain.ptq, no TensorFlow).
"""
from __future__ import annotations

import argparse

from .common import add_output_options, positive_int, print_json_file, say, training_output
from .finetune import DATA_HELP, DATA_METAVAR, STRATEGIES

HELP = ("convert a Keras model (training extra) or a float .tflite (--calibration) to full-int8 .tflite and "
        "measure it with LiteRT")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="Keras classifier, .keras or .h5 (e.g. the output of 'toolchain finetune'), or a "
                   "float .tflite (float16 weights behind DEQUANTIZE, sparse weights and no signature accepted)")
    p.add_argument("--data", metavar=DATA_METAVAR, help=f"Keras model: {DATA_HELP}")
    p.add_argument("--trust-model-code", action="store_true",
                   help="load a Keras model holding Lambda layers or custom objects: Python code that runs on loading")
    t = p.add_argument_group("a float .tflite (ai-edge-quantizer, static int8)")
    t.add_argument("--calibration", metavar="FILE.npz",
                   help="unlabelled representative inputs: 'x', or one array per input name, samples on axis 0")
    t.add_argument("--synthetic-calibration", action="store_true",
                   help="calibrate on seeded random inputs in [-1, 1] instead (activation ranges then do not come "
                        "from real data; every report says so)")
    t.add_argument("--calibration-samples", type=positive_int, metavar="N",
                   help="samples calibrated on (default 512 from the file, 64 synthetic); the next 32 check float "
                        "vs int8")
    t.add_argument("--float-io", action="store_true", help="float32 inputs and outputs (default int8)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="int8 model, .tflite; a JSON summary is written to FILE.json")
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
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the calibration draw and of QAT (default 0)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="tf.distribute strategy of the QAT fine-tune (as for finetune; default: one device)")
    p.add_argument("--epoch-lines", action="store_true", help="one line per QAT epoch instead of Keras' progress bar")
    add_output_options(p, "print the JSON summary (FILE.json) instead of the text summary; progress goes to stderr")


def _run_tflite(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace
    from pathlib import Path

    from ..core.escape import terminal_text
    from ..core.fileio import atomic_write_json
    from ..core.paths import check_paths
    from ..ptq.config import IoType, PtqConfig
    from ..ptq.quantize import quantize_tflite_file
    from ..training.finetune import summary_path

    check_paths(inputs=[args.model, args.calibration], outputs=[args.output, summary_path(args.output)])
    config = PtqConfig(io=IoType.FLOAT if args.float_io else IoType.INT8)
    if args.calibration_samples is not None:
        config = replace(config, calibration_samples=args.calibration_samples, synthetic_samples=args.calibration_samples)
    report = quantize_tflite_file(Path(args.model), Path(args.output),
                                  Path(args.calibration) if args.calibration else None, args.synthetic_calibration,
                                  config)
    atomic_write_json(summary_path(args.output), report.to_json())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        wrote = f"wrote {args.output} ({report.int8_bytes} bytes) and {summary_path(args.output)}"
        say(args, terminal_text("\n".join([*report.summary_lines(), wrote])))
    return 0


def run(args: argparse.Namespace) -> int:
    import time

    from ..core.errors import InputError

    if args.model.lower().endswith(".tflite"):
        return _run_tflite(args)
    if args.calibration or args.synthetic_calibration or args.float_io:
        raise InputError("--calibration, --synthetic-calibration and --float-io are for a float .tflite MODEL; "
                         "a Keras model is calibrated from --data")
    if args.data is None:
        raise InputError(f"MODEL {args.model} is a Keras model: quantizing it needs --data ({DATA_HELP})")

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
        strategy=args.strategy,
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
