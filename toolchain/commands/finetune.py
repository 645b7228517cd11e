"""``toolchain finetune MODEL --data NAME|FILE.npz -o FILE.keras``: cluster weights with tfmot and fine-tune.

TensorFlow is imported inside ``run`` only.
"""
from __future__ import annotations

import argparse

from .common import add_output_options, print_json_file, say, training_output

HELP = "cluster a Keras model's weights (tfmot) and fine-tune it on real data (training extra)"

CENTROID_INITS = ("linear", "kmeans++", "density", "random")
DATA_METAVAR = "NAME|FILE.npz"  # what --data takes, on every verb that has it
STRATEGIES = ("default", "mirrored", "multiworker")  # toolchain.training.distribute.Strategy
DATA_HELP = (
    "an .npz with x_train, y_train, x_test, y_test, or a bundled dataset: "
    "mnist, fashion-mnist, digits"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.keras", help="Keras classifier, .keras or .h5")
    p.add_argument("--trust-model-code", action="store_true",
                   help="load a model holding Lambda layers or custom objects: Python code that runs on loading")
    p.add_argument("--data", required=True, metavar=DATA_METAVAR, help=DATA_HELP)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="clustered model, .keras or .h5; a JSON summary is written to FILE.json")
    p.add_argument("--config", metavar="FILE",
                   help="TOML or JSON settings (schemas/finetune.schema.json); flags override it")
    p.add_argument("--clusters", type=int, metavar="K", help="clusters per weight tensor (default 16)")
    p.add_argument("--layer", action="append", default=[], metavar="PATTERN=K|skip",
                   help="per-layer rule by name pattern (shell wildcards), repeatable; first match wins, "
                        "before the config file's rules")
    p.add_argument("--centroid-init", choices=CENTROID_INITS, help="centroid initialisation (default kmeans++)")
    p.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=None,
                   help="cluster each Conv2D output channel separately (default off)")
    p.add_argument("--preserve-sparsity", action=argparse.BooleanOptionalAction, default=None,
                   help="keep zero weights at zero (default off; needs K >= 3)")
    p.add_argument("--prune", type=float, metavar="SPARSITY", dest="prune_sparsity",
                   help="magnitude-prune this fraction (0..1) of every clustered kernel first (tfmot, polynomial "
                        "schedule), then cluster keeping the zeros (implies --preserve-sparsity)")
    p.add_argument("--prune-epochs", type=int, metavar="N", help="training epochs of the pruning phase (default 2)")
    p.add_argument("--epochs", type=int, metavar="N", help="fine-tuning epochs (default 2; 0 clusters without training)")
    p.add_argument("--learning-rate", type=float, metavar="LR", help="Adam learning rate (default 1e-4)")
    p.add_argument("--batch-size", type=int, metavar="N", help="training batch size (default 32)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy: default (one device), mirrored (every GPU, else every logical CPU), "
                        "multiworker (MultiWorkerMirroredStrategy; each worker runs this command with its TF_CONFIG)")
    p.add_argument("--epoch-lines", action="store_true", help="one line per epoch instead of Keras' progress bar")
    add_output_options(p, "print the JSON summary (FILE.json) instead of the text summary; progress goes to stderr")


def _config(args):
    from ..core.schemas import load_config_file
    from ..training.clustering import CentroidInit, FinetuneConfig, parse_layer_rule

    base = FinetuneConfig.from_dict(load_config_file(args.config, "finetune config"),
                                    f"finetune config {args.config}") if args.config else FinetuneConfig()
    changes = {}
    for flag, key in (("clusters", "clusters"), ("per_channel", "per_channel"),
                      ("preserve_sparsity", "preserve_sparsity"), ("prune_sparsity", "prune_sparsity"),
                      ("prune_epochs", "prune_epochs"), ("epochs", "epochs"),
                      ("learning_rate", "learning_rate"), ("batch_size", "batch_size"), ("seed", "seed"),
                      ("strategy", "strategy")):
        if getattr(args, flag) is not None:
            changes[key] = getattr(args, flag)
    if args.prune_sparsity is not None and args.preserve_sparsity is False:
        from ..core.errors import ConfigError

        raise ConfigError("--prune keeps the pruned zeros through clustering: it cannot go with --no-preserve-sparsity")
    if args.centroid_init is not None:
        changes["centroid_init"] = CentroidInit(args.centroid_init)
    if args.layer:
        changes["layer_rules"] = tuple(parse_layer_rule(t) for t in args.layer) + base.layer_rules
    from dataclasses import replace

    return replace(base, **changes)


def run(args: argparse.Namespace) -> int:
    import time

    from ..core.paths import check_paths
    from ..training.datasets import load_dataset
    from ..training.finetune import finetune_file, summary_path
    from ..training.tf_env import require_training_stack

    t0 = time.perf_counter()
    config = _config(args)  # bad options fail before any data or TensorFlow is loaded
    if config.strategy.value == "multiworker":
        from ..training.distribute import check_tf_config

        check_tf_config()
    check_paths(inputs=[args.model, args.config, args.data if args.data.lower().endswith(".npz") else None],
                outputs=[args.output, summary_path(args.output)])
    require_training_stack()
    data = load_dataset(args.data)
    with training_output(args):
        result = finetune_file(args.model, data, args.output, config,
                               quiet=args.epoch_lines or args.quiet or args.json, trust_model_code=args.trust_model_code)
    if args.json:
        print_json_file(summary_path(args.output))
    lines = [(f"accuracy on the test split ({result.test_samples} samples): "
              f"before {result.accuracy_before:.2%}, after {result.accuracy_after:.2%} "
              f"({config.strategy.value} strategy, {result.replicas} replica(s))")]
    for layer in result.clustered_layers:
        extra = f", at most {layer.max_distinct_values_per_channel} per channel" if layer.per_channel else ""
        lines.append(f"  {layer.name} ({layer.layer_type}): {layer.clusters} clusters -> "
                     f"{layer.distinct_values} distinct values{extra}")
    for layer in result.pruned_layers:
        lines.append(f"  {layer.name} ({layer.layer_type}): pruned to {layer.sparsity:.1%} zeros")
    for layer in result.skipped_layers:
        lines.append(f"  {layer.name} ({layer.layer_type}): not clustered, {layer.reason.value}")
    lines.append(f"wrote {args.output} and {summary_path(args.output)} in {time.perf_counter() - t0:.1f} s")
    say(args, "\n".join(lines))
    return 0
