"""`make deploy` time and output (benchmarks/deploy_time.py), compile speed (benchmarks/compile_speed.py),
real architectures through deploy (benchmarks/corpus_deploy.py) and `make sweep` scaling
(benchmarks/sweep_scaling.py)."""
from __future__ import annotations

from .markdown import Doc, cell, machine_text, table

# --------------------------------------------------------------------------- make deploy

TRAINING_STAGES = ("example", "baseline", "finetune", "quantize")  # the stages that run TensorFlow


def stage_is_training(stage_name: str) -> bool:
    return stage_name.split(" ")[0] in TRAINING_STAGES


def deploy_time_runs(doc: Doc) -> str:
    header = ["run", "stages ran", "total wall", "training stages", "post-processing stages", "start-up and other"]
    rows = []
    for label, key in (("fresh build directory", "fresh"), ("second run (no-op)", "second")):
        r = doc[key]
        rows.append([label, f"{r['stages_ran']} of {len(r['stages'])}", f"{r['wall_s']:.1f} s",
                     f"{r['training_s']:.1f} s", f"{r['post_processing_s']:.1f} s", f"{r['startup_and_other_s']:.1f} s"])
    return table(header, rows)


def deploy_time_stages(doc: Doc) -> str:
    rows = [[s["name"], "training" if stage_is_training(s["name"]) else "post-processing", s["status"],
             f"{s['time_s']:.2f} s"] for s in doc["fresh"]["stages"]]
    return table(["stage (fresh run)", "kind", "status", "time"], rows)


def deploy_time_verdict(doc: Doc) -> str:
    t, fresh, again = doc["targets"], doc["fresh"], doc["second"]
    return (f"Targets: the whole run under {t['max_total_s'] / 60:.0f} minutes: "
            f"**{'PASS' if t['total_pass'] else 'FAIL'}** ({fresh['wall_s']:.1f} s); the post-processing stages under "
            f"{t['max_post_processing_s']:.0f} s: **{'PASS' if t['post_processing_pass'] else 'FAIL'}** "
            f"({fresh['post_processing_s']:.1f} s); the second run does nothing: "
            f"**{'PASS' if t['second_run_noop'] else 'FAIL'}** ({again['stages_ran']} of {len(again['stages'])} "
            f"stages ran, {again['wall_s']:.1f} s). Measured on {machine_text(doc)}.")


def _build_relative(text: str, build_dir: str) -> str:
    """The benchmark builds in a temporary directory: show its paths as a default build would."""
    return text.replace(build_dir.rstrip("/") + "/", "build/").replace(build_dir, "build")


def deploy_output(doc: Doc) -> str:
    """What ``toolchain deploy`` printed in the benchmark's fresh run, rebuilt from its --json output.

    The stage lines and the closing lines are in the command's own format; the training
    stages' epoch lines are left out and ``...`` stands for the models table (deploy_models).
    """
    fresh = doc["fresh"]
    command = fresh["command"]
    build_dir = command[command.index("--build-dir") + 1]
    shown = [a for i, a in enumerate(command) if a != "--json" and "--build-dir" not in command[i - 1:i + 1]]
    targets = ", ".join(f["target"] for f in fresh.get("figures", ())) or doc["target"]
    lines = ["$ " + " ".join(shown),
             f"deploy example (example) for {targets}, K = {doc['clusters']}, into build/example"]
    for s in fresh["stages"]:
        note = f"  {_build_relative(s['note'], build_dir)}" if s["note"] else ""
        lines.append(f"  {s['name']:<32} {s['status']:<10} {s['time_s']:7.1f} s{note}")
    total = sum(s["time_s"] for s in fresh["stages"])
    ran = fresh["stages_ran"]
    lines += ["", "...", "",
              f"{ran} of {len(fresh['stages'])} stages ran, {len(fresh['stages']) - ran} up to date ({total:.1f} s)"]
    for s in fresh["stages"]:
        if s["name"].startswith("report "):
            lines.append(f"{s['name']}: {_build_relative(s['note'], build_dir)}")
        elif s["name"].startswith("dashboard"):
            lines.append(f"dashboard: {_build_relative(s['note'], build_dir)}")
    return "```\n" + "\n".join(lines) + "\n```"


_VARIANT_LABELS = {"plain": "plain int8", "before": "before (tfmot flow)", "after": "after (reclustered)"}


def deploy_models(doc: Doc) -> str:
    """The three models of the example per target, as ``toolchain deploy`` summarises them."""
    header = ["target", "model", "accuracy", "file B", "deflate B", "encoded weights B", "flash: compiled model file B",
              "SRAM B", "cycles", "max distinct values per tensor"]
    rows = []
    for f in doc["fresh"]["figures"]:
        for key, label in _VARIANT_LABELS.items():
            m = f["models"].get(key)
            if m is None:
                continue
            acc = "-" if m["accuracy"] is None else f"{100 * m['accuracy']:.2f}%"
            rows.append([f["target"], label, acc, f"{m['file_bytes']:,}", f"{m['deflate_bytes']:,}",
                         f"{m['encoded_weight_bytes']:,}", f"{m['flash_bytes']:,}", f"{m['sram_bytes']:,}",
                         f"{m['cycles_total']:,}", str(m["max_distinct_values"])])
    return table(header, rows)


# --------------------------------------------------------------------------- compile speed


def compile_speed_table(doc: Doc) -> str:
    header = ["model", "model bytes", "target", "kind", "runs", "median s", "min s", "max s", "cycles", "SRAM B"]
    rows = [[f"`{r['model']}`", f"{r['model_bytes']:,}", r["target"],
             "Vela compile" if r["estimate_kind"] == "vela" else "analytical estimate", str(r["repeats"]),
             f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['max_s']:.3f}", f"{r['cycles_total']:,}",
             f"{r['sram_bytes']:,}"] for r in doc["results"]]
    return table(header, rows)


# --------------------------------------------------------------------------- real architectures (corpus)


def corpus_table(doc: Doc) -> str:
    """Per corpus model and target: NPU / CPU (+init) operators of the reclustered model, status, time,
    flash before -> after, and the after-vs-before verification (benchmarks/corpus_deploy.py)."""
    header = ["model", "target", "operators in the model: NPU / CPU (+init)", "CPU per inference", "status", "time us",
              "flash: compiled model file B, before -> after", "after vs before"]
    rows = []
    for r in doc["results"]:
        v = r["verification"]
        if not v["informative"]:
            fid = "not informative"
        else:
            top1 = "-" if v["top1_agreement"] is None else f"{v['top1_agreement']:.3f}"
            sqnr = "identical" if v["sqnr_db"] is None else f"{v['sqnr_db']:.1f} dB"
            fid = f"top-1 {top1}, max {v['max_abs_diff_steps']:g} steps, {sqnr}" + (" (stream)" if v["stateful"] else "")
        for t, m in r["targets"].items():
            split = f"{m['npu_operators']} / {m['cpu_operators']}" + (
                f" (+{m['init_operators']})" if m["init_operators"] else "")
            rows.append([f"`{r['model']}`", t, split, cell(", ".join(m["cpu_ops"]) or "-"), m["status"],
                         f"{m['inference_time_s'] * 1e6:,.1f}",
                         f"{m['flash_before_bytes']:,} -> {m['flash_after_bytes']:,}", fid])
    return table(header, rows)


# --------------------------------------------------------------------------- sweep scaling


def sweep_scaling_table(doc: Doc) -> str:
    """`make sweep` with 1 and 2 parallel jobs: median wall times and the speed-up."""
    rows = [[f"`make -j{j} sweep`", str(len(doc["wall_s"][j])), f"{doc['median_s'][j]:.1f} s",
             ", ".join(f"{t:.1f}" for t in doc["wall_s"][j])] for j in ("1", "2")]
    rows.append(["speed-up of 2 jobs", "", f"{doc['speedup_2_jobs']:.2f}x", ""])
    note = (f"{doc['points']} sweep points (K) x {len(doc['targets'])} targets ({', '.join(doc['targets'])}), the example "
            f"trained once beforehand; {machine_text(doc)}.")
    return table(["run", "runs", "median wall time", "each run (s)"], rows) + "\n\n" + note
