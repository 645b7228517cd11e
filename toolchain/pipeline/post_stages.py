"""The stages after training, shared by every entry: evaluate, recluster, palettise, and per target
compile, firmware, report and the dashboard. Each runs only when its inputs, settings or tool versions changed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.fileio import (
    atomic_write_json,
    atomic_write_text,
    canonical_json,
    read_input_bytes,
    sha256_bytes,
)
from ..reporting.formatting import fmt_int, fmt_pct, fmt_us
from ..reporting.report import REPORT_JSON, REPORT_MD, Variant
from .config import PipelineConfig
from .manifest import StageKey, file_digest, package_versions
from .progress import StageRecord, StageStatus
from .result import TargetOutcome
from .stage_runner import StageRunner

POST_TOOLS = ("ai-edge-litert", "ethos-u-vela", "numpy")


def data_key(data) -> dict[str, Any] | None:
    if data is None:
        return None
    return {"sha256": data.fingerprint(), "test_samples": len(data.x_test)}


def accuracy_or_reason(model_bytes: bytes, data) -> tuple[float | None, str | None]:
    """Top-1 accuracy on DATA's test split, or (None, why) when LiteRT cannot run the model (a custom operator)."""
    from ..tflite.accuracy import evaluate_tflite
    from ..tflite.interpreter import litert_cannot_run

    why = litert_cannot_run(model_bytes)
    if why is not None:
        return None, f"accuracy not measured: LiteRT cannot run the model ({why})"
    return evaluate_tflite(model_bytes, data.x_test, data.y_test), None


def evaluate_input_stage(run: StageRunner, mdir: Path, model: Path, data) -> dict[str, Any]:
    edir = mdir / "evaluate"
    key = StageKey("evaluate", {"model": file_digest(model), "data": data_key(data)}, {}, package_versions(*POST_TOOLS))

    def body():
        acc, why = accuracy_or_reason(read_input_bytes(model, "model"), data)
        atomic_write_json(edir / "accuracy.json", {"model": model.name, "accuracy": acc, "not_measured": why,
                                                   "test_samples": len(data.x_test)})
        return {"accuracy": acc, "not_measured": why}

    return run.stage("evaluate input model", edir, key, body,
                     lambda r: r.get("not_measured") or f"accuracy {fmt_pct(r['accuracy'])}")


def _plan_profile(config: PipelineConfig, profiles):
    """The profile whose encoder sizes the plan's weights: [plan] target, else the first deploy target."""
    if config.plan.target is None:
        return profiles[0] if profiles else None
    match = [p for p in profiles if config.plan.target in (p.name, *p.aliases)]
    if match:
        return match[0]
    from ..targets.profiles import load_profile

    return load_profile(config.plan.target)


def recluster_stage(run: StageRunner, mdir: Path, before: Path, config: PipelineConfig, data,
                    files: tuple[Path | None, Path | None] = (None, None), profiles=()) -> dict[str, Any]:
    """``files``: the CALIBRATION and VERIFY_DATA files (see rewrite_data); ``profiles``: the deploy's targets (the
    plan's encoder is [plan] target's, else the first's)."""
    from ..core.escape import terminal_text
    from ..rewrite.job import ReclusterJob, run_job
    from ..rewrite.outcome_text import rewrite_summary
    from ..rewrite.planner import SizeGoal
    from ..rewrite.result import TensorAction
    from ..rewrite.verify import VerifyOptions
    from ..tflite.output_kind import OutputKind
    from .rewrite_data import deploy_data

    rdir = mdir / "recluster"
    request = config.plan.request()
    profile = _plan_profile(config, profiles) if request.goal is not SizeGoal.FIXED else None
    calibration, verify_file = files
    key = StageKey("recluster", {"model": file_digest(before), "data": data_key(data),
                                 "calibration": None if calibration is None else file_digest(calibration),
                                 "verify_data": None if verify_file is None else file_digest(verify_file)},
                   {"recluster": config.recluster_dict(), "verify": config.verify.to_dict(),
                    "plan": config.plan.to_dict() | {"profile": profile.to_dict() if profile else None}},
                   package_versions(*POST_TOOLS))

    def compute():
        from .target_sizer import sizer_for

        original = read_input_bytes(before, "model")
        options = VerifyOptions(config.verify.enabled, config.verify.samples or None, 0,
                                {n: OutputKind(k) for n, k in config.verify.output_kinds})
        job = ReclusterJob(config.recluster, request, verify=options,
                           data=deploy_data(original, calibration, verify_file, data, config))
        sizer = sizer_for(profile) if request.goal is not SizeGoal.FIXED else None
        with run.progress.step_bar("recluster") as bar:
            rewritten, rep = run_job(original, job, sizer, progress=bar)
        files = {"model.tflite": rewritten, "recluster.json": canonical_json(rep.to_json()).encode()}
        acc = why = None
        if data is not None:
            acc, why = accuracy_or_reason(rewritten, data)
        return {
            "tensors_rewritten": sum(t.action is TensorAction.REWRITTEN for t in rep.tensors),
            "tensors_unchanged": sum(t.action is TensorAction.UNCHANGED for t in rep.tensors),
            "tensors_skipped": sum(t.action is TensorAction.SKIPPED for t in rep.tensors),
            "max_distinct_values": max((t.distinct_after for t in rep.tensors), default=0),
            "summary": rewrite_summary(rep.tensors),
            "calibration": rep.to_json()["calibration"],
            "verification": None if rep.verification is None else rep.verification.to_json(),
            "data_notes": [*rep.data_notes, *rep.data_warnings] + ([why] if why else []),
            "accuracy": acc,
            "plan": None if rep.plan is None else rep.plan.to_json(),
        }, files

    def gate(r):
        from ..reporting.fidelity import check_gates

        check_gates(r["verification"], config.verify.min_top1_agreement, config.verify.min_output_sqnr_db,
                    "verify.min_top1_agreement (--min-top1-agreement)", "verify.min_output_sqnr_db (--min-output-sqnr)")

    def note(r):
        acc = f", accuracy {fmt_pct(r['accuracy'])}" if r.get("accuracy") is not None else ""
        cal = r.get("calibration") or {}
        fit = (f"; fitted to layer outputs on {cal['source']}" if cal.get("checked_on_data") else
               "; weight-space fit, no data used")
        plan = r.get("plan") or {}
        size = (f"; encoded weights {fmt_int(plan['actual_encoded_bytes'])} B on {plan['target_name']}"
                if plan.get("actual_encoded_bytes") is not None else "")
        return terminal_text(f"{r['summary']}{acc}{fit}{size}")

    # the [verify] gates reject a candidate here: the last good output stays in place (StageRunner.gated_stage)
    label = f"K={config.recluster.clusters}" if request.goal is SizeGoal.FIXED else f"K per tensor: {request.goal.value}"
    return run.gated_stage(f"recluster ({label})", rdir, key, compute, gate, note)


def recluster_summary(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("tensors_rewritten", "tensors_unchanged", "tensors_skipped", "max_distinct_values",
                              "summary", "verification")} | {"calibration": r.get("calibration"),
                                                               "data_notes": r.get("data_notes", [])}


def palettise_stage(run: StageRunner, mdir: Path, after: Path, config: PipelineConfig) -> dict[str, Any] | None:
    import fnmatch

    from ..palettes.palettise import palettise_file
    from ..palettes.table import AUTO_MAX_VALUES, PalettiseConfig
    from ..rewrite.inspect import inspect_model

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


def compile_stage(run: StageRunner, tdir: Path, profile, variant: Variant, model: Path, config: PipelineConfig) -> dict[str, Any]:
    from ..targets.compile import COMPILE_JSON, compile_model
    from ..targets.op_placement import split_label, vela_count_label

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
        ops = f"operators in the model: {split_label(c['npu_operators'], c['cpu_operators'], c['init_operators'])}"
        if c["estimate_kind"] != "vela":  # an Ethos-N78 estimate, labelled with its estimator
            return f"flash {fmt_int(b['flash_used_bytes'])} B, SRAM {fmt_int(b['sram_used_bytes'])} B, " \
                   f"{fmt_int(c['cycles_total'])} cycles ({fmt_us(c['inference_time_s'])} us), {ops}{over} " \
                   f"({c['estimate_label']})"
        return f"flash: model file {fmt_int(b['flash_used_bytes'])} B / Vela off-chip {fmt_int(c['off_chip_flash_bytes'])} " \
               f"B, SRAM {fmt_int(b['sram_used_bytes'])} B, {fmt_int(c['cycles_total'])} cycles " \
               f"({fmt_us(c['inference_time_s'])} us), {ops}, Vela's count: " \
               f"{vela_count_label(c['vela_operator_counts'])}{over}"

    run.stage(f"compile {profile.name} {variant.value}", cdir, key, body, note)
    return json.loads((cdir / COMPILE_JSON).read_text(encoding="utf-8"))


def firmware_stage(run: StageRunner, tdir: Path, profile, name: str, config: PipelineConfig, pal: dict[str, Any] | None):
    from ..core.escape import c_identifier
    from ..firmware.config import MAX_NAME_CHARS, FirmwareConfig
    from ..firmware.firmware import firmware_from_compile_dir
    from ..targets.compile import COMPILE_JSON

    fdir = tdir / "firmware"
    cdir = tdir / "compile" / Variant.AFTER.value
    if not profile.family.compiled_by_vela:
        run.record(StageRecord(f"firmware {profile.name}", StageStatus.SKIPPED, 0.0,
                               "Ethos-N estimate: no Vela model to embed"))
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


def report_stage(run: StageRunner, mdir: Path, doc: dict[str, Any], history) -> TargetOutcome:
    from ..reporting.dashboard import INDEX_HTML, render_target_page
    from ..reporting.markdown import report_markdown

    target = doc["target"]["name"]
    rdir = mdir / target / "report"
    # the target's page shows the history entries of that target only: other targets' builds do not redo it
    mine = [e for e in history if target in e.get("targets", {})]
    key = StageKey("report", {"report": sha256_bytes(canonical_json(doc).encode()),
                              "history": sha256_bytes(canonical_json(mine).encode())}, {}, package_versions())

    def body():
        atomic_write_json(rdir / REPORT_JSON, doc)
        atomic_write_text(rdir / REPORT_MD, report_markdown(doc))
        atomic_write_text(rdir / INDEX_HTML, render_target_page(doc, history))
        return {}

    run.stage(f"report {target}", rdir, key, body, lambda r: str(rdir / INDEX_HTML))
    return TargetOutcome(target, rdir, doc)


def dashboard_stage(run: StageRunner, mdir: Path, name: str, docs, history, history_digest: str) -> None:
    from ..reporting.dashboard import INDEX_HTML, render_combined_page

    key = StageKey("dashboard", {"reports": [sha256_bytes(canonical_json(d).encode()) for d in docs],
                                 "history": history_digest}, {}, package_versions())

    def body():
        atomic_write_text(mdir / INDEX_HTML, render_combined_page(name, docs, history))
        return {}

    # the model directory is this stage's directory: its manifest lists index.html only
    run.stage("dashboard (all targets)", mdir, key, body, lambda r: str(mdir / INDEX_HTML), outputs=[INDEX_HTML])
