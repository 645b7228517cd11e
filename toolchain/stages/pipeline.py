"""``toolchain deploy``: every stage from a model to per-target reports, skipping what is up to date.

Keras model (or the bundled example when none is given)::

    example -> baseline (float .tflite + plain int8) -> finetune (clustering, K) -> quantize (the "before")
            -> recluster (the "after") -> palettise -> per target: compile plain/before/after -> firmware
            -> report -> dashboard

int8 .tflite (the post-training entry, no TensorFlow, no data needed): the given model is the
"before"; [evaluate, with DATA] -> recluster -> palettise -> per target: compile before/after ->
firmware -> report -> dashboard.

Every stage owns a directory under ``build/<model>/`` and a manifest there (toolchain.stages.manifest);
it runs only when its inputs, settings or tool versions changed. This module imports no TensorFlow:
the Keras-side stages live in pipeline_training and are imported only for a Keras model.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from ..core.errors import BudgetExceeded, ConfigError, InputError, ModelFormatError, VerificationError
from ..core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, canonical_json, read_input_bytes, sha256_bytes
from . import manifest
from .manifest import StageKey, file_digest, package_versions
from .pipeline_config import PipelineConfig, load_pipeline_config
from .progress import OutputMode, Progress, StageRecord, StageStatus, table
from .report import REPORT_JSON, REPORT_MD, ReportInput, Variant, VariantInput, build_report, fmt_int, fmt_pct, key_metrics

DEFAULT_TARGET = "ethos-u55"
DEFAULT_EXAMPLE_DATA = "mnist"
KERAS_SUFFIXES = (".keras", ".h5")
POST_TOOLS = ("ai-edge-litert", "ethos-u-vela", "numpy")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class Entry(Enum):
    EXAMPLE = "example"  # no MODEL: the bundled example, trained (or reused) first
    KERAS = "keras"  # a float Keras model: the whole pipeline
    TFLITE = "tflite"  # an int8 .tflite: starts at recluster


@dataclass(frozen=True)
class DeployOptions:
    """The options of ``toolchain deploy`` / the Makefile variables of ``make deploy``."""

    model: Path | None = None  # MODEL
    data: str | None = None  # DATA: an .npz or a bundled dataset name
    clusters: int | None = None  # CLUSTERS (default 16)
    targets: tuple[str, ...] = ()  # TARGET, one or several (default ethos-u55)
    profile: Path | None = None  # PROFILE: a custom hardware profile file
    config: Path | None = None  # CONFIG: the pipeline config file
    build_dir: Path = Path("build")
    example_dir: Path | None = None  # where the example is built/cached (default BUILD/example)


@dataclass(frozen=True)
class TargetOutcome:
    target: str
    report_dir: Path
    report: dict[str, Any] = field(repr=False)

    @property
    def within_budget(self) -> bool:
        return bool(self.report["budget"]["within_budget"])


@dataclass(frozen=True)
class DeployResult:
    model: str
    entry: Entry
    model_dir: Path
    clusters: int
    stages: tuple[StageRecord, ...]
    targets: tuple[TargetOutcome, ...]
    history_appended: bool
    enforce_budget: bool

    @property
    def ran(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if s.status is StageStatus.RAN)

    @property
    def over_budget(self) -> tuple[str, ...]:
        return tuple(t.target for t in self.targets if not t.within_budget)

    @property
    def dashboard(self) -> Path:
        return self.model_dir / "index.html"

    def raise_for_budget(self) -> None:
        """BudgetExceeded (exit 4) when the reclustered model does not fit a target (unless not enforced)."""
        if not self.enforce_budget or not self.over_budget:
            return
        parts = []
        for t in self.targets:
            if not t.within_budget:
                b = t.report["budget"]
                parts.append(f"{t.target} (SRAM {b['sram_bytes']:,} of {b['sram_budget_bytes']:,} B, "
                             f"flash {b['flash_bytes']:,} of {b['flash_budget_bytes']:,} B)")
        raise BudgetExceeded(
            f"the reclustered {self.model} does not fit " + "; ".join(parts)
            + f": see {self.model_dir}/<target>/report (set compile.enforce_budget = false in CONFIG to accept)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "entry": self.entry.value,
            "model_dir": str(self.model_dir),
            "clusters": self.clusters,
            "stages": [s.to_json() for s in self.stages],
            "stages_ran": len(self.ran),
            "targets": [
                {
                    "target": t.target,
                    "report_json": str(t.report_dir / REPORT_JSON),
                    "report_md": str(t.report_dir / REPORT_MD),
                    "index_html": str(t.report_dir / "index.html"),
                    "within_budget": t.within_budget,
                    "models": key_metrics(t.report),
                }
                for t in self.targets
            ],
            "dashboard": str(self.dashboard),
            "history_appended": self.history_appended,
            "over_budget": list(self.over_budget),
        }


# ----------------------------------------------------------------------------- inputs


def model_name(path: Path) -> str:
    name = _NAME_CHARS.sub("_", path.stem).strip("._") or "model"
    return name


def classify_model(path: Path | None) -> Entry:
    if path is None:
        return Entry.EXAMPLE
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        kind = Entry.TFLITE
    elif suffix in KERAS_SUFFIXES:
        kind = Entry.KERAS
    else:
        raise InputError(f"MODEL {path} must be a Keras model (.keras, .h5) or an int8 .tflite")
    if not path.exists():
        raise InputError(f"MODEL not found: {path}")
    if path.is_dir():
        raise InputError(f"MODEL is a directory, expected a file: {path}")
    return kind


_KERAS_MAGIC = {".keras": (b"PK\x03\x04", "a zip archive (.keras)"), ".h5": (b"\x89HDF\r\n\x1a\n", "an HDF5 file (.h5)")}


def check_keras_file(path: Path) -> None:
    """Refuse a file that cannot be a Keras model from its first bytes, before TensorFlow is loaded."""
    magic, kind = _KERAS_MAGIC[path.suffix.lower()]
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
    except OSError as exc:
        raise InputError(f"cannot read MODEL {path}: {exc.strerror or exc}") from None
    if head != magic:
        raise ModelFormatError(f"MODEL {path} is not a Keras model: not {kind}")


def resolve_targets(names: tuple[str, ...], profile_file: Path | None):
    """Hardware profiles for TARGET names (built-in names, aliases or profile files) and PROFILE."""
    from .profiles import load_profile

    custom = load_profile(Path(profile_file)) if profile_file is not None else None
    wanted = list(names) or ([] if custom is not None else [DEFAULT_TARGET])
    # a TARGET naming the custom profile means that profile, not a built-in one
    profiles = [custom if custom is not None and n == custom.name else load_profile(n) for n in wanted]
    if custom is not None and custom not in profiles:
        profiles.append(custom)
    seen: dict[str, Any] = {}
    for p in profiles:
        if p.name in seen and seen[p.name] != p:
            raise ConfigError(f"two different profiles are named '{p.name}': rename the custom profile")
        seen.setdefault(p.name, p)
    return list(seen.values())


def load_data(spec: str, config: PipelineConfig):
    """The dataset, cut to the config's subset (seeded, sorted indices: the same subset every run)."""
    import numpy as np

    from .datasets import Dataset, load_dataset

    data = load_dataset(spec)
    s = config.data
    if s.train_samples is None and s.test_samples is None:
        return data
    rng = np.random.default_rng(s.seed)

    def pick(n: int, k: int | None) -> np.ndarray:
        if k is None or k >= n:
            return np.arange(n)
        return np.sort(rng.choice(n, size=k, replace=False))

    tr, te = pick(len(data.x_train), s.train_samples), pick(len(data.x_test), s.test_samples)
    return Dataset(data.name, data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te])


def data_label(data) -> str:
    """The dataset's name for reports: a bundled name, or an .npz file's name without its directory."""
    return Path(data.name).name if data.name.lower().endswith(".npz") else data.name


# ----------------------------------------------------------------------------- the run


class _Run:
    def __init__(self, options: DeployOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.records: list[StageRecord] = []

    def stage(self, name: str, stage_dir: Path, key: StageKey, body: Callable[[], dict[str, Any] | None],
              note: Callable[[dict[str, Any]], str] = lambda r: "", outputs: list[str] | None = None) -> dict[str, Any]:
        """Run ``body`` unless the stage's manifest says it is up to date; returns the stage's result."""
        t0 = time.perf_counter()
        stored = manifest.up_to_date(stage_dir, key)
        if stored is not None:
            result, status = stored["result"], StageStatus.UP_TO_DATE
        else:
            manifest.begin(stage_dir)
            stage_dir.mkdir(parents=True, exist_ok=True)
            result = manifest.finish(stage_dir, key, body() or {}, outputs)["result"]
            status = StageStatus.RAN
        self.record(StageRecord(name, status, time.perf_counter() - t0, note(result)))
        return result

    def record(self, rec: StageRecord) -> None:
        self.records.append(rec)
        self.progress.stage(rec)


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
        from .compile import load_npu_model

        load_npu_model(options.model)  # int8, not Vela-compiled, not TFLM: refused before any work
    elif entry is Entry.KERAS:
        check_keras_file(options.model)  # type: ignore[arg-type]
    name = "example" if entry is Entry.EXAMPLE else model_name(options.model)  # type: ignore[arg-type]
    mdir = options.build_dir / name
    data_spec = options.data or (DEFAULT_EXAMPLE_DATA if entry is Entry.EXAMPLE else None)
    if entry is Entry.KERAS and data_spec is None:
        raise InputError(f"MODEL {options.model} is a Keras model: fine-tuning needs DATA (--data: an .npz or "
                         "mnist, fashion-mnist, digits); or give an int8 .tflite to start at recluster without data")
    data = None if data_spec is None else load_data(data_spec, config)
    run = _Run(options, progress)
    progress.line(f"deploy {name} ({entry.value}) for {', '.join(p.name for p in profiles)}, "
                  f"K = {config.clusters}, into {mdir}")

    float_model = finetune_info = None
    accuracies: dict[Variant, float | None] = {v: None for v in Variant}
    models: dict[Variant, tuple[Path, str]] = {}  # variant -> (path, file as reported)
    if entry is Entry.TFLITE:
        before = Path(options.model)  # type: ignore[arg-type]
        models[Variant.BEFORE] = (before, before.name)
        if data is not None:
            accuracies[Variant.BEFORE] = _evaluate_input(run, mdir, before, data)["accuracy"]
    else:
        float_model, finetune_info = _keras_stages(run, entry, mdir, config, data, models, accuracies)

    rc = _recluster(run, mdir, models[Variant.BEFORE][0], config, data)
    accuracies[Variant.AFTER] = rc.get("accuracy")
    after = mdir / "recluster" / "model.tflite"
    models[Variant.AFTER] = (after, "recluster/model.tflite")
    pal = _palettise(run, mdir, after, config)

    docs = []
    for profile in profiles:
        tdir = mdir / profile.name
        compiled = {v: _compile(run, tdir, profile, v, path, config) for v, (path, _) in models.items()}
        fw = _firmware(run, tdir, profile, name, config, pal)
        variants = tuple(
            VariantInput(v, models[v][1], read_input_bytes(models[v][0], "model"), accuracies[v],
                         compiled[v], f"{profile.name}/compile/{v.value}")
            for v in Variant if v in models
        )
        rep = ReportInput(
            model=name, entry=entry.value, clusters=config.recluster.clusters, variants=variants,
            data=None if data is None else {"name": data_label(data), "test_samples": int(len(data.x_test))},
            float_model=float_model, finetune=finetune_info, recluster=_recluster_summary(rc),
            palettise=None if pal is None else {k: pal[k] for k in ("tensors", "raw_bytes", "palettised_bytes", "tflm")},
            firmware=fw, enforce_budget=config.compile.enforce_budget,
        )
        docs.append(build_report(rep))

    from .history import HISTORY, record_build

    hist = record_build(mdir / HISTORY, config.recluster.clusters, {d["target"]["name"]: key_metrics(d) for d in docs})
    history_digest = sha256_bytes(canonical_json(list(hist.entries)).encode())
    outcomes = [_write_report(run, mdir, d, hist.entries, history_digest) for d in docs]
    _write_dashboard(run, mdir, name, docs, hist.entries, history_digest)
    return DeployResult(name, entry, mdir, config.recluster.clusters, tuple(run.records), tuple(outcomes), hist.appended,
                        config.compile.enforce_budget)


# ----------------------------------------------------------------------------- stages


def _training_key(stage: str, inputs: dict[str, Any], config: dict[str, Any]) -> StageKey:
    from .pipeline_training import training_versions

    return StageKey(stage, inputs, config, {**package_versions(training=True), **training_versions()})


def _keras_stages(run: _Run, entry: Entry, mdir: Path, config: PipelineConfig, data, models, accuracies):
    from . import pipeline_training as pt

    quiet = not run.progress.interactive
    # Settings are checked before anything trains (a bad CONFIG fails in a second, not after a fine-tune).
    quantize_cfg = pt.quantize_dict(config.quantize)
    finetune_cfg = pt.finetune_dict(config.finetune)
    if entry is Entry.EXAMPLE:
        t0 = time.perf_counter()
        example_dir = run.options.example_dir or (run.options.build_dir / "example")
        with run.progress.training_output():
            ex = pt.run_example(example_dir, quiet)
        run.record(StageRecord("example", StageStatus.UP_TO_DATE if ex.reused else StageStatus.RAN,
                               time.perf_counter() - t0, f"float accuracy {fmt_pct(ex.float_accuracy)}"))
        source = ex.model_path
    else:
        source = Path(run.options.model)  # type: ignore[arg-type]
    data_key = {"sha256": data.fingerprint(), "train_samples": int(len(data.x_train)),
                "test_samples": int(len(data.x_test))}

    bdir = mdir / "baseline"
    key = _training_key("baseline", {"model": file_digest(source), "data": data_key},
                        {"quantize": quantize_cfg, "recipe": pt.BASELINE_RECIPE})

    def baseline():
        with run.progress.training_output():
            return pt.run_baseline(source, data, config.quantize, bdir, quiet)

    base = run.stage("baseline (float, plain int8)", bdir, key, baseline,
                     lambda r: f"float {fmt_pct(r['float_accuracy'])}, plain int8 {fmt_pct(r['plain_accuracy'])}")
    models[Variant.PLAIN] = (bdir / pt.PLAIN_MODEL, f"baseline/{pt.PLAIN_MODEL}")
    accuracies[Variant.PLAIN] = base["plain_accuracy"]

    fdir = mdir / "finetune"
    key = _training_key("finetune", {"model": file_digest(source), "data": data_key}, finetune_cfg)

    def finetune():
        with run.progress.training_output():
            return pt.run_finetune(source, data, config.finetune, fdir, quiet)

    ft = run.stage(f"finetune (K={finetune_cfg['clusters']})", fdir, key, finetune,
                   lambda r: f"float accuracy {fmt_pct(r['accuracy_before'])} -> {fmt_pct(r['accuracy_after'])}")

    qdir = mdir / "quantize"
    clustered = fdir / pt.FINETUNED_MODEL
    key = _training_key("quantize", {"model": file_digest(clustered), "data": data_key}, quantize_cfg)

    def quantize():
        with run.progress.training_output():
            return pt.run_quantize(clustered, data, config.quantize, qdir, quiet)

    q = run.stage("quantize (tfmot flow)", qdir, key, quantize,
                  lambda r: f"int8 accuracy {fmt_pct(r['int8_accuracy'])}, up to {r['max_distinct_values']} values/tensor")
    models[Variant.BEFORE] = (qdir / pt.BEFORE_MODEL, f"quantize/{pt.BEFORE_MODEL}")
    accuracies[Variant.BEFORE] = q["int8_accuracy"]
    float_model = {"file": f"baseline/{pt.FLOAT_MODEL}", "file_bytes": base["float_model_bytes"],
                   "deflate_bytes": base["float_deflate_bytes"], "accuracy": base["float_accuracy"]}
    return float_model, ft


def _data_key(data) -> dict[str, Any] | None:
    if data is None:
        return None
    return {"sha256": data.fingerprint(), "test_samples": int(len(data.x_test))}


def _evaluate_input(run: _Run, mdir: Path, model: Path, data) -> dict[str, Any]:
    from .evaluate import evaluate_tflite

    edir = mdir / "evaluate"
    key = StageKey("evaluate", {"model": file_digest(model), "data": _data_key(data)}, {}, package_versions(*POST_TOOLS))

    def body():
        acc = evaluate_tflite(read_input_bytes(model, "model"), data.x_test, data.y_test)
        atomic_write_json(edir / "accuracy.json", {"model": model.name, "accuracy": acc,
                                                   "test_samples": int(len(data.x_test))})
        return {"accuracy": acc}

    return run.stage("evaluate input model", edir, key, body, lambda r: f"accuracy {fmt_pct(r['accuracy'])}")


def _recluster(run: _Run, mdir: Path, before: Path, config: PipelineConfig, data) -> dict[str, Any]:
    from .recluster import TensorAction, recluster_model

    rdir = mdir / "recluster"
    key = StageKey("recluster", {"model": file_digest(before), "data": _data_key(data)},
                   {"recluster": config.recluster_dict(), "verify_samples": config.verify.samples},
                   package_versions(*POST_TOOLS))

    def body():
        original = read_input_bytes(before, "model")
        rewritten, rep = recluster_model(original, config.recluster)
        ver = _verify(original, rewritten, data, config.verify.samples)
        atomic_write_bytes(rdir / "model.tflite", rewritten)
        atomic_write_json(rdir / "recluster.json", replace(rep, verification=ver).to_json())
        acc = None
        if data is not None:
            from .evaluate import evaluate_tflite

            acc = evaluate_tflite(rewritten, data.x_test, data.y_test)
        a = ver.agreement
        return {
            "tensors_rewritten": sum(t.action is TensorAction.REWRITTEN for t in rep.tensors),
            "tensors_unchanged": sum(t.action is TensorAction.UNCHANGED for t in rep.tensors),
            "tensors_skipped": sum(t.action is TensorAction.SKIPPED for t in rep.tensors),
            "max_distinct_values": max((t.distinct_after for t in rep.tensors), default=0),
            "verification": {"inputs": ver.inputs, "samples": a.samples, "top1_agreement": a.top1_agreement,
                             "max_abs_diff_steps": a.max_abs_diff_steps, "mean_abs_diff_steps": a.mean_abs_diff_steps},
            "accuracy": acc,
        }

    def note(r):
        acc = f", accuracy {fmt_pct(r['accuracy'])}" if r.get("accuracy") is not None else ""
        return f"{r['tensors_rewritten']} tensor(s) rewritten, at most {r['max_distinct_values']} values{acc}"

    r = run.stage(f"recluster (K={config.recluster.clusters})", rdir, key, body, note)
    limit = config.verify.min_top1_agreement
    top1 = r["verification"]["top1_agreement"]
    if limit is not None and top1 is not None and top1 < limit:
        raise VerificationError(f"the reclustered model's top-1 agreement with the model it came from is {top1:.3f}, "
                                f"below verify.min_top1_agreement = {limit}")
    return r


def _verify(original: bytes, rewritten: bytes, data, samples: int):
    """LiteRT agreement of the two models: on the first test samples when there is data, else seeded random inputs."""
    import numpy as np

    from ..tflite import interpreter as rt
    from .recluster import Verification, verify

    specs = rt.input_specs(original)
    if data is None or len(specs) != 1:
        return verify(original, rewritten, None, samples, 0)
    spec = specs[0]
    x = np.asarray(data.x_test[:samples], dtype=np.float64)
    sample_shape = spec.shape[1:]
    if x.shape[1:] != sample_shape:
        if int(np.prod(x.shape[1:])) != int(np.prod(sample_shape)):
            return verify(original, rewritten, None, samples, 0)
        x = x.reshape((-1, *sample_shape))
    if np.issubdtype(spec.dtype, np.integer) and spec.scale > 0:
        info = np.iinfo(spec.dtype)
        x = np.clip(np.round(x / spec.scale) + spec.zero_point, info.min, info.max)
    inputs = [[x[i:i + 1].astype(spec.dtype)] for i in range(x.shape[0])]
    agreement = rt.compare_outputs(rt.run_model(original, inputs), rt.run_model(rewritten, inputs),
                                   rt.output_specs(original))
    return Verification(inputs=f"test samples of {data_label(data)}", agreement=agreement)


def _recluster_summary(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("tensors_rewritten", "tensors_unchanged", "tensors_skipped", "max_distinct_values",
                              "verification")}


def _palettise(run: _Run, mdir: Path, after: Path, config: PipelineConfig) -> dict[str, Any] | None:
    import fnmatch

    from .inspect import inspect_model
    from .palettise import AUTO_MAX_VALUES, PalettiseConfig, palettise_file

    s = config.palettise
    pdir = mdir / "palettise"
    limit = AUTO_MAX_VALUES if s.bits is None else 1 << s.bits
    stats = inspect_model(read_input_bytes(after, "model"))
    eligible = [t for t in stats.tensors if not any(fnmatch.fnmatchcase(t.name, p) for p in s.exclude)]
    if s.bits is None and not any(t.distinct_values <= limit for t in eligible):
        run.record(StageRecord("palettise", StageStatus.SKIPPED, 0.0, f"no weight tensor has <= {limit} values"))
        return None
    key = StageKey("palettise", {"model": file_digest(after)},
                   {"bits": s.bits, "exclude": list(s.exclude), "tflm": s.tflm},
                   package_versions(*POST_TOOLS, "tflite-micro"))

    def body():
        out = palettise_file(after, pdir, PalettiseConfig(bits=s.bits, exclude=s.exclude, tflm=s.tflm))
        ps = out.palette_set
        return {"tensors": len(ps.tables), "raw_bytes": ps.raw_bytes, "palettised_bytes": ps.palettised_bytes,
                "tflm": out.document["tflm"]["status"]}

    r = run.stage("palettise", pdir, key, body,
                  lambda r: f"{r['tensors']} tensor(s), {fmt_int(r['raw_bytes'])} -> {fmt_int(r['palettised_bytes'])} B")
    return dict(r, dir=str(pdir))


def _compile(run: _Run, tdir: Path, profile, variant: Variant, model: Path, config: PipelineConfig) -> dict[str, Any]:
    from .compile import COMPILE_JSON, compile_model

    cdir = tdir / "compile" / variant.value
    key = StageKey("compile", {"model": file_digest(model)},
                   {"profile": profile.to_dict(), "allow_cpu": config.compile.allow_cpu},
                   package_versions(*POST_TOOLS))

    def body():
        r = compile_model(model, profile, cdir, enforce_budget=False, allow_cpu=config.compile.allow_cpu,
                          timeout_s=config.compile.timeout_s)
        return {"status": r.status.value}

    def note(_r):
        c = json.loads((cdir / COMPILE_JSON).read_text(encoding="utf-8"))
        b = c["budget"]
        over = "" if b["within_budget"] else ", OVER BUDGET"
        return f"flash {fmt_int(b['flash_used_bytes'])} B, SRAM {fmt_int(b['sram_used_bytes'])} B, " \
               f"{fmt_int(c['cycles_total'])} cycles{over}"

    run.stage(f"compile {profile.name} {variant.value}", cdir, key, body, note)
    return json.loads((cdir / COMPILE_JSON).read_text(encoding="utf-8"))


def _firmware(run: _Run, tdir: Path, profile, name: str, config: PipelineConfig, pal: dict[str, Any] | None):
    from .c_emit import c_identifier
    from .compile import COMPILE_JSON
    from .firmware import MAX_NAME_CHARS, FirmwareConfig, firmware_from_compile_dir

    fdir = tdir / "firmware"
    cdir = tdir / "compile" / Variant.AFTER.value
    if not profile.family.compiled_by_vela:
        run.record(StageRecord(f"firmware {profile.name}", StageStatus.SKIPPED, 0.0,
                               "analytical estimate: no Vela model to embed"))
        return None
    ident = c_identifier(name, fallback="model").lower()
    ident = (ident if ident[0].isalpha() else f"model_{ident.lstrip('_')}")[:MAX_NAME_CHARS]
    fw_config = FirmwareConfig(target=profile.name, name=ident, **config.firmware.to_kwargs())
    vela_file = json.loads((cdir / COMPILE_JSON).read_text(encoding="utf-8"))["vela_model"]
    inputs = {"compile_json": file_digest(cdir / COMPILE_JSON), "vela_model": file_digest(cdir / vela_file)}
    if pal is not None:
        inputs["palettes"] = file_digest(Path(pal["dir"]) / "palettes.json")
    key = StageKey("firmware", inputs,
                   {"target": fw_config.target, "name": fw_config.name, "section": fw_config.section,
                    "arena_margin_percent": fw_config.arena_margin_percent,
                    "arena_overhead_bytes": fw_config.arena_overhead_bytes},
                   package_versions())

    def body():
        bundle, _ = firmware_from_compile_dir(cdir, fdir, fw_config, pal["dir"] if pal is not None else None)
        m = bundle.manifest
        return {"model_symbol": m["model"]["symbol"], "model_bytes": m["model"]["size_bytes"],
                "arena_bytes": m["arena"]["bytes"]}

    r = run.stage(f"firmware {profile.name}", fdir, key, body,
                  lambda r: f"{r['model_symbol']}[{fmt_int(r['model_bytes'])}], arena {fmt_int(r['arena_bytes'])} B")
    return {"dir": f"{profile.name}/firmware", **r}


def _write_report(run: _Run, mdir: Path, doc: dict[str, Any], history, history_digest: str) -> TargetOutcome:
    from .dashboard import INDEX_HTML, render_target_page
    from .report import report_markdown

    target = doc["target"]["name"]
    rdir = mdir / target / "report"
    key = StageKey("report", {"report": sha256_bytes(canonical_json(doc).encode()), "history": history_digest}, {},
                   package_versions())

    def body():
        atomic_write_json(rdir / REPORT_JSON, doc)
        atomic_write_text(rdir / REPORT_MD, report_markdown(doc))
        atomic_write_text(rdir / INDEX_HTML, render_target_page(doc, history))
        return {}

    run.stage(f"report {target}", rdir, key, body, lambda r: str(rdir / INDEX_HTML))
    return TargetOutcome(target, rdir, doc)


def _write_dashboard(run: _Run, mdir: Path, name: str, docs, history, history_digest: str) -> None:
    from .dashboard import INDEX_HTML, render_combined_page

    key = StageKey("dashboard", {"reports": [sha256_bytes(canonical_json(d).encode()) for d in docs],
                                 "history": history_digest}, {}, package_versions())

    def body():
        atomic_write_text(mdir / INDEX_HTML, render_combined_page(name, docs, history))
        return {}

    # the model directory is this stage's directory: its manifest lists index.html only
    run.stage("dashboard (all targets)", mdir, key, body, lambda r: str(mdir / INDEX_HTML), outputs=[INDEX_HTML])


# ----------------------------------------------------------------------------- summary


def summary_table(result: DeployResult) -> str:
    rows = []
    for t in result.targets:
        for v in Variant:
            m = t.report["models"][v.value]
            if m is None:
                continue
            rows.append([t.target if v is Variant.PLAIN or (v is Variant.BEFORE and t.report["models"]["plain"] is None)
                         else "", v.short, fmt_pct(m["accuracy"]), fmt_int(m["file_bytes"]), fmt_int(m["deflate_bytes"]),
                         fmt_int(m["encoded_weight_bytes"]), fmt_int(m["flash_bytes"]), fmt_int(m["sram_bytes"]),
                         fmt_int(m["cycles_total"]), f"{m['npu_operators']}/{m['cpu_operators']}",
                         "yes" if m["within_budget"] else "NO"])
    return table(["target", "model", "accuracy", "file B", "deflate B", "encoded B", "flash B", "SRAM B", "cycles",
                  "NPU/CPU ops", "fits"], rows, right={2, 3, 4, 5, 6, 7, 8, 9})


def stage_summary(result: DeployResult) -> str:
    n = len(result.stages)
    ran = len(result.ran)
    total = sum(s.time_s for s in result.stages)
    if ran == 0:
        return f"nothing to do: all {n} stages up to date ({total:.1f} s)"
    skipped = sum(s.status is StageStatus.SKIPPED for s in result.stages)
    return f"{ran} of {n} stages ran, {n - ran - skipped} up to date" + (f", {skipped} skipped" if skipped else "") \
        + f" ({total:.1f} s)"
