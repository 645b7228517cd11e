"""``toolchain deploy``: every stage from a model to per-target reports, skipping what is up to date.

Keras model (or the bundled example when none is given)::

    example -> baseline (float .tflite + plain int8) -> finetune (clustering, K) -> quantize (the "before")
            -> recluster (the "after") -> palettise -> per target: compile plain/before/after -> firmware
            -> report -> dashboard

int8 .tflite (the post-training entry, no TensorFlow, no data needed): the given model is the
"before"; [evaluate, with DATA] -> recluster -> palettise -> per target: compile before/after ->
firmware -> report -> dashboard.

Every stage owns a directory under ``build/<model>/`` and a manifest there (toolchain.pipeline.manifest);
it runs only when its inputs, settings or tool versions changed. This module imports no TensorFlow:
the Keras-side stages live in pipeline_training and are imported only for a Keras model.
"""
from __future__ import annotations

from pathlib import Path

from ..core.errors import InputError
from ..core.fileio import canonical_json, read_input_bytes, sha256_bytes
from ..reporting.report import (
    ReportInput,
    Variant,
    VariantInput,
    build_report,
    key_metrics,
)
from .config import load_pipeline_config
from .inputs import (
    Entry,
    check_keras_file,
    classify_model,
    data_label,
    load_data,
    model_name,
    resolve_targets,
)
from .keras_stages import run_keras_stages
from .post_stages import (
    compile_stage,
    dashboard_stage,
    evaluate_input_stage,
    firmware_stage,
    palettise_stage,
    recluster_stage,
    recluster_summary,
    report_stage,
)
from .progress import OutputMode, Progress
from .result import DeployOptions, DeployResult
from .stage_runner import StageRunner

DEFAULT_EXAMPLE_DATA = "mnist"


def run_pipeline(options: DeployOptions, progress: Progress | None = None) -> DeployResult:
    """Run (or skip) every stage; raises the typed errors of the stages (exit codes 2, 3, 5).

    A reclustered model over a target's budget is reported, not raised: call
    ``result.raise_for_budget()`` (the command does, after printing the summary).
    """
    progress = progress or Progress(OutputMode.QUIET)
    entry = classify_model(options.model)
    config = load_pipeline_config(options.config, options.clusters)
    profiles = resolve_targets(options.targets, options.profile)
    if entry is Entry.TFLITE:
        from ..targets.npu_model import load_npu_model

        load_npu_model(options.model)  # int8, not Vela-compiled, not TFLM: refused before any work
    else:
        from ..training.tf_env import require_training_stack

        if entry is Entry.KERAS:
            check_keras_file(options.model)  # type: ignore[arg-type]
        require_training_stack()  # a Keras model or the example: fine-tuning needs the training extra
    name = "example" if entry is Entry.EXAMPLE else model_name(options.model)  # type: ignore[arg-type]
    mdir = options.build_dir / name
    data_spec = options.data or (DEFAULT_EXAMPLE_DATA if entry is Entry.EXAMPLE else None)
    if entry is Entry.KERAS and data_spec is None:
        raise InputError(f"MODEL {options.model} is a Keras model: fine-tuning needs DATA (--data: an .npz or "
                         "mnist, fashion-mnist, digits); or give an int8 .tflite to start at recluster without data")
    data = None if data_spec is None else load_data(data_spec, config)
    run = StageRunner(options, progress)
    progress.line(f"deploy {name} ({entry.value}) for {', '.join(p.name for p in profiles)}, "
                  f"K = {config.clusters}, into {mdir}")

    float_model = finetune_info = None
    accuracies: dict[Variant, float | None] = {v: None for v in Variant}
    models: dict[Variant, tuple[Path, str]] = {}  # variant -> (path, file as reported)
    if entry is Entry.TFLITE:
        before = Path(options.model)  # type: ignore[arg-type]
        models[Variant.BEFORE] = (before, before.name)
        if data is not None:
            accuracies[Variant.BEFORE] = evaluate_input_stage(run, mdir, before, data)["accuracy"]
    else:
        float_model, finetune_info = run_keras_stages(run, entry, mdir, config, data, models, accuracies)

    reclustered = recluster_stage(run, mdir, models[Variant.BEFORE][0], config, data)
    accuracies[Variant.AFTER] = reclustered.get("accuracy")
    after = mdir / "recluster" / "model.tflite"
    models[Variant.AFTER] = (after, "recluster/model.tflite")
    pal = palettise_stage(run, mdir, after, config)

    docs = []
    for profile in profiles:
        tdir = mdir / profile.name
        compiled = {v: compile_stage(run, tdir, profile, v, path, config) for v, (path, _) in models.items()}
        fw = firmware_stage(run, tdir, profile, name, config, pal)
        variants = tuple(
            VariantInput(v, models[v][1], read_input_bytes(models[v][0], "model"), accuracies[v],
                         compiled[v], f"{profile.name}/compile/{v.value}")
            for v in Variant if v in models
        )
        rep = ReportInput(
            model=name, entry=entry.value, clusters=config.recluster.clusters, variants=variants,
            data=None if data is None else {"name": data_label(data), "test_samples": int(len(data.x_test))},
            float_model=float_model, finetune=finetune_info, recluster=recluster_summary(reclustered),
            palettise=None if pal is None else {k: pal[k] for k in ("tensors", "raw_bytes", "palettised_bytes", "tflm")},
            firmware=fw, enforce_budget=config.compile.enforce_budget,
        )
        docs.append(build_report(rep))

    from ..reporting.history import HISTORY, record_build

    hist = record_build(mdir / HISTORY, config.recluster.clusters, {d["target"]["name"]: key_metrics(d) for d in docs})
    history_digest = sha256_bytes(canonical_json(list(hist.entries)).encode())
    outcomes = [report_stage(run, mdir, d, hist.entries, history_digest) for d in docs]
    dashboard_stage(run, mdir, name, docs, hist.entries, history_digest)
    return DeployResult(name, entry, mdir, config.recluster.clusters, tuple(run.records), tuple(outcomes), hist.appended,
                        config.compile.enforce_budget)
