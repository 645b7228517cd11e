"""``toolchain deploy``: every stage from a model to per-target reports, skipping what is up to date.

Keras model (or the bundled example when none is given)::

    example -> baseline (float .tflite + plain int8) -> finetune (clustering, K) -> quantize (the "before")
            -> recluster (the "after") -> palettise -> per target: compile plain/before/after -> firmware
            -> report -> dashboard

int8 .tflite (the post-training entry, no TensorFlow, no data needed): the given model is the
"before"; [evaluate, with DATA] -> recluster -> palettise -> per target: compile before/after ->
firmware -> report -> dashboard.

float .tflite (no TensorFlow; --calibration samples, or --synthetic-calibration): quantize
(ai-edge-quantizer: the int8 "before") -> then as an int8 .tflite. The same --calibration file feeds
the rewrite's fit, part of it held back for its check (toolchain.pipeline.rewrite_data).

Every stage owns a directory under ``build/<model>/`` and a manifest there (toolchain.pipeline.manifest);
it runs only when its inputs, settings or tool versions changed. This module imports no TensorFlow:
the Keras-side stages live in pipeline_training and are imported only for a Keras model.
"""
from __future__ import annotations

from pathlib import Path

from ..core.errors import ConfigError, InputError
from ..core.escape import terminal_text
from ..core.fileio import canonical_json, read_input_bytes, sha256_bytes
from ..core.paths import check_output_dir, check_paths, refuse_links
from ..reporting.report import (
    ReportInput,
    Variant,
    VariantInput,
    build_report,
    key_metrics,
)
from .build_lock import model_dir_lock
from .config import load_pipeline_config
from .inputs import (
    Entry,
    check_keras_file,
    classify_model,
    data_label,
    load_data,
    model_name,
    resolve_targets,
    tflite_entry,
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
    data_spec = options.data or (DEFAULT_EXAMPLE_DATA if entry is Entry.EXAMPLE else None)
    if entry is Entry.KERAS and data_spec is None:
        raise InputError(f"MODEL {options.model} is a Keras model: fine-tuning needs DATA (--data: an .npz or "
                         "mnist, fashion-mnist, digits); or give an int8 .tflite to start at recluster without data")
    if options.calibration is not None and entry is not Entry.TFLITE:
        raise ConfigError("--calibration is for a .tflite MODEL (int8, or float: quantized on it); a Keras model's "
                          "recluster stage calibrates on the training split of --data")
    config = load_pipeline_config(options.config, options.clusters, options.settings)
    profiles = resolve_targets(options.targets, options.profile, options.replace_builtin)
    if entry is Entry.TFLITE:
        entry = tflite_entry(options.model, options.calibration, options.synthetic_calibration)  # type: ignore[arg-type]
    else:
        from ..training.tf_env import require_training_stack

        if entry is Entry.KERAS:
            check_keras_file(options.model)  # type: ignore[arg-type]
        require_training_stack()  # a Keras model or the example: fine-tuning needs the training extra
        if entry is Entry.KERAS and not options.trust_model_code:
            from ..training.keras_io import check_model_code

            check_model_code(options.model)  # type: ignore[arg-type]  # code in the model: refused before any work
    name = "example" if entry is Entry.EXAMPLE else model_name(options.model)  # type: ignore[arg-type]
    mdir = options.build_dir / name
    data_file = Path(options.data) if options.data and Path(options.data).suffix.lower() == ".npz" else None
    # build/<model>/ is this command's own: no input may live there, no link is followed there (a restored
    # cache could point a stage directory at the input's folder), and one deploy at a time writes it
    check_output_dir(options.build_dir, "--build-dir")
    check_paths(inputs=[options.model, options.config, options.profile, data_file, options.calibration,
                        options.verify_data], owned_dirs=[mdir])
    refuse_links(mdir, "deploy")  # (the example's cache, build/example, is its model directory)
    data = None if data_spec is None else load_data(data_spec, config)  # bad data: refused before the build dir
    with model_dir_lock(mdir):
        return _run_stages(options, progress, entry, config, profiles, name, mdir, data)


def _run_stages(options: DeployOptions, progress: Progress, entry: Entry, config, profiles, name: str,
                mdir: Path, data) -> DeployResult:
    run = StageRunner(options, progress)
    progress.line(f"deploy {name} ({entry.value}) for {', '.join(p.name for p in profiles)}, "
                  f"K = {config.clusters}, into {terminal_text(str(mdir))}")

    float_model = finetune_info = None
    accuracies: dict[Variant, float | None] = {v: None for v in Variant}
    models: dict[Variant, tuple[Path, str]] = {}  # variant -> (path, file as reported)
    quantization = None
    if entry is Entry.FLOAT_TFLITE:
        from .ptq_stage import ptq_config, quantization_summary, quantize_float_stage

        model = Path(options.model)  # type: ignore[arg-type]
        before, quantized = quantize_float_stage(run, mdir, model, options.calibration, options.synthetic_calibration,
                                                 ptq_config(config, model, options.calibration))
        quantization = quantization_summary(quantized)
        models[Variant.BEFORE] = (before, f"quantize/{before.name}")
    elif entry is Entry.TFLITE:
        before = Path(options.model)  # type: ignore[arg-type]
        models[Variant.BEFORE] = (before, before.name)
    if entry in (Entry.TFLITE, Entry.FLOAT_TFLITE):
        if data is not None:
            accuracies[Variant.BEFORE] = evaluate_input_stage(run, mdir, before, data)["accuracy"]
    else:
        float_model, finetune_info = run_keras_stages(run, entry, mdir, config, data, models, accuracies)

    reclustered = recluster_stage(run, mdir, models[Variant.BEFORE][0], config, data,
                                  (options.calibration, options.verify_data), profiles)
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
            data=None if data is None else {"name": data_label(data), "test_samples": len(data.x_test)},
            float_model=float_model, finetune=finetune_info, recluster=recluster_summary(reclustered),
            palettise=None if pal is None else {k: pal[k] for k in ("tensors", "raw_bytes", "palettised_bytes", "tflm")},
            firmware=fw, enforce_budget=config.compile.enforce_budget,
            min_top1_agreement=config.verify.min_top1_agreement, min_output_sqnr_db=config.verify.min_output_sqnr_db,
            quantization=quantization,
        )
        docs.append(build_report(rep))

    from ..reporting.history import HISTORY, record_build

    hist = record_build(mdir / HISTORY, config.recluster.clusters, {d["target"]["name"]: key_metrics(d) for d in docs})
    history_digest = sha256_bytes(canonical_json(list(hist.entries)).encode())
    outcomes = [report_stage(run, mdir, d, hist.entries) for d in docs]
    dashboard_stage(run, mdir, name, model_reports(mdir, docs), hist.entries, history_digest)
    return DeployResult(name, entry, mdir, config.recluster.clusters, tuple(run.records), tuple(outcomes), hist.appended,
                        config.compile.enforce_budget, config.verify.min_top1_agreement,
                        config.verify.min_output_sqnr_db)


def model_reports(mdir: Path, docs: list[dict]) -> list[dict]:
    """Every target built under the model directory, not only this run's, by target name (so the page does
    not depend on which target ran last); another target's report.json this toolchain cannot read is left out."""
    from ..core.errors import InputError
    from ..reporting.report import REPORT_JSON
    from ..reporting.sweep import load_report

    current = {d["target"]["name"] for d in docs}
    others = []
    for path in sorted(mdir.glob(f"*/report/{REPORT_JSON}")):
        if path.parent.parent.name in current:
            continue
        try:
            doc = load_report(path)
        except InputError:  # an older schema or a damaged file: that target's next deploy rewrites it
            continue
        if doc["model"] == docs[0]["model"] and doc["target"]["name"] not in current:
            others.append(doc)
    return sorted([*docs, *others], key=lambda d: d["target"]["name"])
