"""Markdown tables from the benchmarks' results JSON documents: one pure function per table.

The benchmark scripts print their tables with these functions and benchmarks/render_docs.py
puts the same text between the ``<!-- generated: NAME -->`` markers of README.md and docs/,
so a table looks the same printed and in the docs and is never typed by hand.
Standard library only (no TensorFlow, no Vela, no toolchain import): rendering every
table takes milliseconds.
"""
from __future__ import annotations

from typing import Any

from common import FASHION_TARGETS

Doc = dict[str, Any]

# Variants of the compression benchmark (benchmarks/compression_fashion_mnist.py) the summaries pick.
FASHION_TOOLCHAIN, FASHION_PLAN = "this toolchain", "this toolchain, size plan"


# --------------------------------------------------------------------------- helpers


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f}"


def _mcycles(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.3f}"


def _span(values: list[float], fmt: str) -> str:
    """'a' or 'a-b' for the smallest and largest value ('a to b' when signs are shown)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    sep = " to " if fmt.startswith("+") or min(values) < 0 else "-"
    return lo if lo == hi else f"{lo}{sep}{hi}"


def _machine(doc: Doc) -> str:
    m = doc.get("machine", {})
    text = f"{m.get('cpus', '?')} cores, Python {m.get('python', '?')}"
    if "load_average_start" in m:
        text += f", load average {m['load_average_start'][0]:.1f} at the start"
    return text


# --------------------------------------------------------------------------- compression on Fashion-MNIST


def _fashion_layers(doc: Doc) -> list[str]:
    """Layer labels in graph order (recorded as ``layers``; older documents: the float row's keys, in order)."""
    if "layers" in doc:
        return list(doc["layers"])
    return list(doc["rows"][0]["distinct_per_tensor"])


def _fashion_rows(doc: Doc, model: str) -> list[Doc]:
    return [r for r in doc["rows"] if r["model"] == model]


def _fashion_pick(doc: Doc, model: str, clusters: int | None, variant: str) -> Doc:
    return next(r for r in _fashion_rows(doc, model) if r["clusters"] == clusters and r["variant"] == variant)


def fashion_mnist_models(doc: Doc) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in doc["rows"]))


def fashion_mnist_table(doc: Doc, model: str) -> str:
    """Every variant of one model: accuracy, zipped size, distinct values per layer, Vela figures per target."""
    targets = doc["vela_targets"]
    layers = _fashion_layers(doc)
    rows = _fashion_rows(doc, model)
    float_row = _fashion_pick(doc, model, None, "float")
    header = ["K", "variant", "test accuracy", "vs float", "zipped KiB", "float zipped / zipped",
              "distinct values " + " / ".join(layers)]
    for t in targets:
        header += [f"{t} encoded weights KiB", f"{t} flash KiB", f"{t} Mcycles"]
    out = []
    for r in rows:
        cells = [str(r["clusters"] or "-"), r["variant"], f"{100 * r['accuracy']:.2f}%",
                 f"{100 * (r['accuracy'] - float_row['accuracy']):+.2f}", _kib(r["zipped_bytes"]),
                 f"{float_row['zipped_bytes'] / r['zipped_bytes']:.1f}x",
                 " / ".join(str(r["distinct_per_tensor"].get(n, "-")) for n in layers)]
        for t in targets:
            v = r["vela"].get(t)
            cells += ["-"] * 3 if v is None else [_kib(v["encoded_weight_bytes"]), _kib(v["flash_bytes"]),
                                                  _mcycles(v["cycles_total"])]
        out.append(cells)
    return _table(header, out)


def fashion_mnist_targets(doc: Doc) -> str:
    """The targets (encoded weights vs the usual flow, zipped size vs float), PASS/FAIL per variant and K."""
    th = doc.get("target_thresholds", FASHION_TARGETS)
    targets = doc["vela_targets"]
    target_k = doc["targets_checked_at_clusters"]
    header = ["model", "K", "variant", f"encoded weights vs usual flow ({' / '.join(targets)})",
              "accuracy vs usual flow",
              f"target <= {th['max_encoded_ratio_vs_usual']:g}x, >= -{th['max_accuracy_loss_vs_usual_points']:g} points",
              "zipped float / zipped", "accuracy vs float",
              f"target >= {th['min_zip_factor_vs_float']:g}x, >= -{th['max_accuracy_loss_vs_float_points']:g} point"]
    rows = []
    for c in doc["targets"]:
        rows.append([
            c["model"], f"{c['clusters']}{' (target K)' if c['clusters'] == target_k else ''}", c["variant"],
            " / ".join(f"{c['encoded_ratio_vs_usual'][t]:.3f}x" for t in targets),
            f"{c['accuracy_vs_usual_points']:+.2f}", "PASS" if c["encoded_target_pass"] else "FAIL",
            f"{c['zip_factor_vs_float']:.2f}x", f"{c['accuracy_vs_float_points']:+.2f}",
            "PASS" if c["zip_target_pass"] else "FAIL"])
    return _table(header, rows)


def fashion_mnist_verdict(doc: Doc) -> str:
    """Which variants meet both targets at the target K, per model, and what the plain rewrite reaches there."""
    k = doc["targets_checked_at_clusters"]
    at_k = [c for c in doc["targets"] if c["clusters"] == k]
    lines = []
    for model in fashion_mnist_models(doc):
        mine = [c for c in at_k if c["model"] == model]
        both = [c["variant"] for c in mine if c["encoded_target_pass"] and c["zip_target_pass"]]
        plain = next((c for c in mine if c["variant"] == FASHION_TOOLCHAIN), None)
        text = f"- `{model}` at K = {k}: both targets met by " + (", ".join(f"*{v}*" for v in both) or "no variant")
        if plain is not None:
            ratios = " / ".join(f"{v:.2f}x" for v in plain["encoded_ratio_vs_usual"].values())
            text += (f"; *{FASHION_TOOLCHAIN}* (exactly {k} values per tensor) reaches {ratios} of the usual flow's "
                     f"encoded weights at {plain['accuracy_vs_usual_points']:+.2f} points and "
                     f"{plain['zip_factor_vs_float']:.1f}x smaller zipped than float")
        lines.append(text + ".")
    return "\n".join(lines)


def fashion_mnist_notes(doc: Doc) -> str:
    """What every variant had in common on the Vela targets (budgets, NPU/CPU split)."""
    vela = [(t, v) for r in doc["rows"] for t, v in r["vela"].items()]
    fits = all(v["within_budget"] for _, v in vela)
    splits = sorted({(v["npu_operators"], v["cpu_operators"]) for _, v in vela})
    split = " or ".join(f"{n} NPU, {c} CPU operators" for n, c in splits)
    return (f"Every int8 variant {'fits' if fits else 'does not always fit'} the default boards of "
            f"{' and '.join(doc['vela_targets'])} (budgets recorded, not enforced) and compiles to {split}; "
            f"accuracies are on the {doc['test_samples']:,}-image test set.")


def _largest_layer(row: Doc, target: str) -> Doc:
    return max(row["vela"][target]["layers"], key=lambda la: la["original_bytes"])


def fashion_mnist_largest_layer(doc: Doc) -> str:
    """Why the encoded sizes are what they are: the largest weight tensor under Vela's encoder, per variant."""
    target = doc["vela_targets"][0]
    header = ["model", "K", "variant", "largest layer (share of weights)", "distinct values",
              "top-32 values cover", "entropy bits/weight", f"{target} encoded bits/weight",
              "encoded / int8 bytes", "whole model zipped, bits/weight"]
    rows = []
    for model in fashion_mnist_models(doc):
        int8 = _fashion_pick(doc, model, None, "int8")
        weights = int8["vela"][target]["original_weight_bytes"]  # one byte per int8 weight
        for r in _fashion_rows(doc, model):
            zipped = f"{8 * r['zipped_bytes'] / weights:.2f}"
            if not r["vela"]:  # the float model: only its zipped size compares
                rows.append([model, "-", r["variant"], "-", "-", "-", "-", "-", "-", zipped])
                continue
            layer = _largest_layer(r, target)
            tensor = next(t for t in r["tensors"] if t["layer"] == layer["layer"])
            rows.append([
                model, str(r["clusters"] or "-"), r["variant"],
                f"{layer['layer']} ({100 * layer['original_bytes'] / weights:.1f}%)", str(tensor["distinct"]),
                f"{100 * tensor['top32_fraction']:.0f}%", f"{tensor['entropy_bits_per_weight']:.2f}",
                f"{8 * layer['encoded_bytes'] / layer['original_bytes']:.2f}",
                f"{layer['encoded_bytes'] / layer['original_bytes']:.3f}x", zipped])
    return _table(header, rows)


def fashion_mnist_cost(doc: Doc) -> str:
    """Where the benchmark's time goes (as first measured, also when later runs reuse cached models)."""
    t = doc["times_s"]
    steps = [("base training", "base_training_s"), ("clustering fine-tunes (tfmot)", "finetune_s"),
             ("cluster-preserving QAT", "cqat_s"), ("TFLite conversions", "conversion_s"),
             ("`recluster`, size plans included", "recluster_s"), ("bias correction", "bias_correction_s"),
             ("LiteRT accuracy on the test set", "evaluate_s"), ("Vela compiles", "vela_s")]
    rows = [[label, f"{t[key]:.0f} s"] for label, key in steps]
    rows.append(["sum of the steps (a run without caches)", f"{doc['uncached_estimate_s']:.0f} s"])
    cold = doc.get("last_cold_run")
    if cold:
        rows.append(["wall time of the last run without caches",
                     f"{cold['wall_s']:.0f} s ({cold['wall_s'] / 60:.1f} min; load average "
                     f"{cold['load_average_start'][0]:.1f} at the start)"])
    rows.append(["wall time of the latest run", f"{doc['wall_s']:.0f} s ("
                 + ("nothing cached" if doc.get("cold_run") else "cached models reused") + ")"])
    rec = [r["recluster_s"] for r in doc["rows"] if r["variant"] == FASHION_TOOLCHAIN]
    rows.append([f"`recluster` of one model (default joint fit, {len(rec)} models)", f"{_span(rec, '.1f')} s"])
    return _table(["step", "time on " + _machine(doc)], rows)


# --------------------------------------------------------------------------- rewriter speed


def recluster_speed_table(doc: Doc) -> str:
    """The exact palette DP against scikit-learn's weighted KMeans on MobileNetV2's tensors: on the same
    histogram, end to end from the raw weights, and the whole-model rewrite; medians (min-max) of repeated runs."""

    def t(x: dict, fmt: str) -> str:
        return f"{x['median']:{fmt}} ({x['min']:{fmt}}-{x['max']:{fmt}})"

    header = ["K", "tensors", "weights", "same histogram: DP s", "KMeans s", "ratio", "from raw weights: DP s",
              "KMeans s", "ratio", "DP error / KMeans error", "DP worse on", "whole model keep / refit / joint s"]
    rows = []
    for s in doc["summary"]:
        h, r, fits = s["histogram"], s["raw"], s["recluster_model_s"]
        rows.append([str(s["clusters"]), str(s["tensors"]), f"{s['weights']:,}",
                     t(h["dp_s"], ".3f"), t(h["kmeans_s"], ".2f"), f"{h['kmeans_s']['median'] / h['dp_s']['median']:.0f}x",
                     t(r["dp_s"], ".3f"), t(r["kmeans_s"], ".1f"), f"{r['kmeans_s']['median'] / r['dp_s']['median']:.0f}x",
                     f"{s['dp_error_total'] / s['kmeans_error_total']:.3f}", str(s["tensors_dp_worse_than_kmeans"]),
                     " / ".join(f"{fits[f]['median']:.2f}" for f in ("keep", "refit", "joint"))])
    first = doc["summary"][0]
    note = (f"Medians of {doc['repeats']} runs in one session, (min-max) in brackets. Same histogram: "
            f"{first['histogram']['kmeans_setting']}; from raw weights: {first['raw']['kmeans_setting']}.")
    return _table(header, rows) + "\n\n" + note


# --------------------------------------------------------------------------- restoring the cluster count


def restore_clusters_table(doc: Doc) -> str:
    header = ["K", "model", "distinct int8 values per tensor", "squared error vs float weights", "int8 accuracy",
              "vs before", "Vela encoded weights"]
    rows = [[str(r["clusters"]), r["variant"], ", ".join(map(str, r["distinct_per_tensor"])),
             f"{r['squared_error_vs_float']:.3g}", f"{100 * r['int8_accuracy']:.1f}%",
             f"{r['accuracy_delta_points']:+.1f}", f"{r['vela_encoded_weight_bytes']:,} B"] for r in doc["rows"]]
    return _table(header, rows)


def restore_clusters_verdict(doc: Doc) -> str:
    """Per K: the joint fit against keeping the scales and against the usual flow it rewrites."""
    lines = []
    for k in dict.fromkeys(r["clusters"] for r in doc["rows"]):
        rows = {r["variant"]: r for r in doc["rows"] if r["clusters"] == k}
        before = next(r for v, r in rows.items() if v.startswith("before"))
        joint, keep = rows["recluster --fit joint"], rows["recluster --fit keep"]
        deltas = [r["accuracy_delta_points"] for v, r in rows.items() if v.startswith("recluster --fit joint")]
        lines.append(
            f"- K = {k}: the joint fit has {keep['squared_error_vs_float'] / joint['squared_error_vs_float']:.0f}x less "
            f"weight error than keeping the scales ({joint['squared_error_vs_float']:.3g} against the usual flow's own "
            f"{before['squared_error_vs_float']:.3g}), accuracy {_span(deltas, '+.1f')} points against before, and "
            f"takes {100 * (1 - joint['vela_encoded_weight_bytes'] / before['vela_encoded_weight_bytes']):.0f}% off "
            f"the encoded weights, where the usual flow left up to {max(before['distinct_per_tensor'])} values per tensor.")
    return "\n".join(lines)


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
    return _table(header, rows)


def deploy_time_stages(doc: Doc) -> str:
    rows = [[s["name"], "training" if stage_is_training(s["name"]) else "post-processing", s["status"],
             f"{s['time_s']:.2f} s"] for s in doc["fresh"]["stages"]]
    return _table(["stage (fresh run)", "kind", "status", "time"], rows)


def deploy_time_verdict(doc: Doc) -> str:
    t, fresh, again = doc["targets"], doc["fresh"], doc["second"]
    return (f"Targets: the whole run under {t['max_total_s'] / 60:.0f} minutes: "
            f"**{'PASS' if t['total_pass'] else 'FAIL'}** ({fresh['wall_s']:.1f} s); the post-processing stages under "
            f"{t['max_post_processing_s']:.0f} s: **{'PASS' if t['post_processing_pass'] else 'FAIL'}** "
            f"({fresh['post_processing_s']:.1f} s); the second run does nothing: "
            f"**{'PASS' if t['second_run_noop'] else 'FAIL'}** ({again['stages_ran']} of {len(again['stages'])} "
            f"stages ran, {again['wall_s']:.1f} s). Measured on {_machine(doc)}.")


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
    header = ["target", "model", "accuracy", "file B", "deflate B", "encoded weights B", "flash B", "SRAM B",
              "cycles", "max distinct values per tensor"]
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
    return _table(header, rows)


# --------------------------------------------------------------------------- compile speed


def compile_speed_table(doc: Doc) -> str:
    header = ["model", "model bytes", "target", "kind", "runs", "median s", "min s", "max s", "cycles", "SRAM B"]
    rows = [[f"`{r['model']}`", f"{r['model_bytes']:,}", r["target"],
             "Vela compile" if r["estimate_kind"] == "vela" else "analytical estimate", str(r["repeats"]),
             f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['max_s']:.3f}", f"{r['cycles_total']:,}",
             f"{r['sram_bytes']:,}"] for r in doc["results"]]
    return _table(header, rows)


# --------------------------------------------------------------------------- real architectures (corpus)


def corpus_table(doc: Doc) -> str:
    """Per corpus model and target: NPU / CPU (+init) operators of the reclustered model, status, time,
    flash before -> after, and the after-vs-before verification (benchmarks/corpus_deploy.py)."""
    header = ["model", "target", "NPU / CPU (+init) operators", "CPU per inference", "status", "time us",
              "flash B before -> after", "after vs before"]
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
            rows.append([f"`{r['model']}`", t, split, _cell(", ".join(m["cpu_ops"]) or "-"), m["status"],
                         f"{m['inference_time_s'] * 1e6:,.1f}",
                         f"{m['flash_before_bytes']:,} -> {m['flash_after_bytes']:,}", fid])
    return _table(header, rows)


# --------------------------------------------------------------------------- fuzzing


def fuzz_figures(doc: Doc) -> str:
    """The long fuzzing campaign in one row."""
    outcomes = ", ".join(f"{'accepted by every stage' if k == 'ok' else k} {v:,}"
                         for k, v in sorted(doc["outcomes"].items(), key=lambda kv: -kv[1]))
    order = {s: i for i, s in enumerate(doc["stages"])}
    stages = ", ".join(f"{k} {v:,}"
                       for k, v in sorted(doc["ended_at_stage"].items(), key=lambda kv: order.get(kv[0], len(order))))
    s = doc["slowest_case"]
    slowest = f"{s['time_s']:.2f} s ({'accepted' if s['outcome'] == 'ok' else s['outcome']}, at {s['stage']})"
    seeds = doc["cases"] - doc["mutated_cases"]
    return _table(
        ["cases", "outcomes", "ended at stage", "slowest case", "peak RSS", "findings", "time"],
        [[f"{doc['mutated_cases']:,} mutated + {seeds} seeds", outcomes, stages, slowest,
          f"{doc['peak_rss_bytes'] / 2**20:.0f} MiB", str(len(doc["findings"])),
          f"{doc['elapsed_s']:.0f} s ({doc['cases_per_s']} cases/s)"]])


def fuzz_input_figures(doc: Doc) -> str:
    """The campaign's second part: names, paths, profiles and configs (results written before it: a note)."""
    inputs = doc.get("inputs")
    if not inputs:
        return "_Not in the latest results: rerun `benchmarks/fuzz_models.py`._"
    outcomes = ", ".join(f"{'accepted' if k == 'ok' else k} {v:,}"
                         for k, v in sorted(inputs["outcomes"].items(), key=lambda kv: -kv[1]))
    s = inputs["slowest_case"]
    return _table(
        ["cases", "families", "outcomes", "slowest case", "findings", "time"],
        [[f"{inputs['cases']:,}", ", ".join(f"{k} {v:,}" for k, v in inputs["by_family"].items()), outcomes,
          f"{s['time_s']:.2f} s ({s['family']})", str(len(inputs["findings"])), f"{inputs['elapsed_s']:.0f} s"]])


# --------------------------------------------------------------------------- bad inputs


def bad_inputs_table(doc: Doc) -> str:
    """Each case of tests/test_bad_inputs.py as run by benchmarks/bad_inputs_table.py: command, exit, message."""
    rows = []
    for c in doc["cases"]:
        if c["exit_code"] == 0:
            seen = f"accepted: {c['note']}" if c["note"] else "accepted"
        else:
            seen = f"`{_cell(c['error_line'])}`" + (f" ({_cell(c['note'])})" if c["note"] else "")
        rows.append([f"`{c['id']}`", _cell(c["what"]), f"`{_cell(c['command'])}`", str(c["exit_code"]), seen])
    return _table(["case", "input", "command", "exit", "what the user sees"], rows)


def results_machines(compression: Doc, speed: Doc, restore: Doc, deploy: Doc, compile_: Doc, fuzz: Doc,
                     bad: Doc, corpus: Doc, output_aware: Doc | None = None, sweep: Doc | None = None,
                     base: Doc | None = None, rfc: Doc | None = None) -> str:
    """Where each results file was measured: the machine, and the load on it when recorded."""
    named = [("converged base models", "base_models", base),
             ("compression on Fashion-MNIST", "compression_fashion_mnist", compression),
             ("the clustering RFC's table, the cascade", "rfc_table", rfc),
             ("rewriter speed", "recluster_speed", speed), ("restoring the cluster count", "restore_clusters", restore),
             ("`make deploy` time", "deploy_time", deploy), ("compile speed", "compile_speed", compile_),
             ("`make sweep` scaling", "sweep_scaling", sweep),
             ("fuzzing", "fuzz_models", fuzz), ("bad inputs", "bad_inputs", bad),
             ("real architectures through deploy", "corpus_deploy", corpus),
             ("the output-aware fit", "output_aware", output_aware)]
    rows = []
    for label, stem, doc in named:
        if doc is None:
            continue
        m = doc.get("machine", {})
        load = m.get("load_average_start")
        script = "bad_inputs_table" if stem == "bad_inputs" else stem
        rows.append([label, f"`benchmarks/{script}.py`", f"`{stem}.json`",
                     f"{m.get('machine', '?')}, {m.get('cpus', '?')} cores, Python {m.get('python', '?')}",
                     "-" if load is None else f"{load[0]:.1f} to {m['load_average_end'][0]:.1f}"])
    return _table(["benchmark", "script", "results", "machine", "load average (start to end)"], rows)


# --------------------------------------------------------------------------- the README's summary


def _output_aware_line(doc: Doc) -> str:
    """Post-training K=8 (depthwise included) on every network: output-aware against weight-space, in points of int8."""
    drops_w, drops_o, ratio, nets = [], [], [], []
    for model in dict.fromkeys(r["model"] for r in doc["rows"]):
        base = _oa_row(doc, model, "plain int8")
        w = _oa_row(doc, model, "post-training, weight-space fit, depthwise included")
        o = _oa_row(doc, model, "post-training, output-aware fit, depthwise included")
        if base and w and o:
            nets.append(model)
            drops_w.append(100 * (w["accuracy"] - base["accuracy"]))
            drops_o.append(100 * (o["accuracy"] - base["accuracy"]))
            ratio.append(o["encoded_ratio_vs_int8"])
    return (f"- **Post-training K = 8 with calibration data ({len(nets)} Fashion-MNIST networks with BatchNorm and "
            f"depthwise layers):** the output-aware fit keeps plain int8's accuracy within {_span(drops_o, '+.1f')} "
            f"points where the weight-space fit changes it by {_span(drops_w, '+.1f')}, at {_span(ratio, '.2f')}x of int8's encoded "
            f"weights ([rewriter](docs/rewriter.md#output-aware-fit-palettes-from-calibration-data)).")


_NET_NAMES = {"convnet": "ConvNet", "convnet_bn": "BN ConvNet", "mobilenet_v2": "MobileNetV2-style",
              "ds_cnn": "DS-CNN-style"}


def _bases_line(doc: Doc) -> str:
    """The converged float base models and the schedule that trained them."""
    s, models = doc["schedule"], doc["models"]
    accs = ", ".join(f"{_NET_NAMES.get(n, n)} {_pct(b['float_accuracy'])}" for n, b in models.items())
    epochs = _span([float(b["epochs"]) for b in models.values()], ".0f")
    return (f"- **Base models, trained to convergence on Fashion-MNIST:** float top-1 {accs} on the "
            f"{doc['test_images']:,}-image test set, after {epochs} epochs of {s['optimizer'].capitalize()} "
            f"({s['learning_rate']}, batch {s['batch']}, all {s['train_images']:,} training images, seed {s['seed']}) "
            f"([base models](docs/benchmarks.md#converged-base-models)).")


def _rfc_lines(doc: Doc) -> list[str]:
    """The RFC rows measured so far (figures published beside ours) and the cascade's effect on encoded weights."""
    lines, measured = [], _rfc_measured(doc)
    if measured:
        parts = []
        for r, run in measured:
            base = doc["bases"][r["net"]]["float"]
            (a0, a1), (m0, m1) = r["rfc_top1_percent"], r["rfc_zipped_mb"]
            ours = []
            for name, label in ((RFC_TFMOT_FLOAT, "tfmot flow's float .tflite"), (RFC_OUTPUTS, "this toolchain")):
                v = _variant(run, name)
                if v is not None:
                    ours.append(f"{label} {100 * (v['accuracy'] - base['accuracy']):+.2f} / "
                                f"{base['zipped_bytes'] / v['zipped_bytes']:.1f}x")
            usual, fitted, t0 = _variant(run, RFC_USUAL), _variant(run, RFC_OUTPUTS), doc["vela_targets"][0]
            if usual is not None and fitted is not None:
                ratio = fitted["vela"][t0]["encoded_weight_bytes"] / usual["vela"][t0]["encoded_weight_bytes"]
                ours.append(f"{t0} encoded weights {ratio:.2f}x the tfmot flow's int8")
            parts.append(f"  - {r['rfc_model']}, {r['rfc_configuration']}: RFC {a1 - a0:+.2f} / {m0 / m1:.1f}x; "
                         f"here (`{r['net']}`) " + ", ".join(ours))
        lines.append(f"- **The clustering RFC's table at Fashion-MNIST scale ({len(measured)} of {len(doc['rfc_rows'])} "
                     f"rows measured; accuracy change in points / times smaller zipped than the float model, the "
                     f"RFC's measurement; this toolchain's figure is its int8 model with the output-aware fit, so it "
                     f"includes quantization; "
                     f"[RFC table](docs/benchmarks.md#the-clustering-rfcs-results-table-reproduced-in-form)):**")
        lines += parts
    t0, pairs = doc["vela_targets"][0], _cascade_pairs(doc)
    per_net = []
    for net in dict.fromkeys(n for n, _, _, _ in pairs):
        mine = [(a, b) for n, _, a, b in pairs if n == net]
        enc = [b["vela"][t0]["encoded_weight_bytes"] / a["vela"][t0]["encoded_weight_bytes"] for a, b in mine]
        acc = [100 * (b["accuracy"] - a["accuracy"]) for a, b in mine]
        per_net.append(f"{_NET_NAMES.get(net, net)} {_span(enc, '.2f')}x at {_span(acc, '+.2f')} points")
    if per_net:
        lines.append(f"- **Prune, cluster, quantize (K = 16 and 32):** 50% magnitude pruning before clustering takes "
                     f"{t0}'s encoded weights to these multiples of clustering alone: " + "; ".join(per_net)
                     + " (both rewritten with the output-aware fit; "
                     "[cascade](docs/benchmarks.md#the-cascade-prune-cluster-quantize)).")
    return lines


def results_summary(compression: Doc, restore: Doc, speed: Doc, deploy: Doc, fuzz: Doc,
                    output_aware: Doc | None = None, bases: Doc | None = None, rfc: Doc | None = None) -> str:
    """The front page's results, one line per finding, each from one results document."""
    k = compression["targets_checked_at_clusters"]
    target = compression["vela_targets"][0]
    plan = [c for c in compression["targets"] if c["clusters"] == k and c["variant"] == FASHION_PLAN]
    plain = [c for c in compression["targets"] if c["clusters"] == k and c["variant"] == FASHION_TOOLCHAIN]
    enc = _span([c["encoded_ratio_vs_usual"][target] for c in plan], ".2f")
    zipped = _span([c["zip_factor_vs_float"] for c in plan], ".1f")
    acc = _span([c["accuracy_vs_usual_points"] for c in plan], "+.2f")
    plain_enc = _span([c["encoded_ratio_vs_usual"][target] for c in plain], ".2f")

    rk = [r for r in restore["rows"] if r["clusters"] == min(r["clusters"] for r in restore["rows"])]
    before = next(r for r in rk if r["variant"].startswith("before"))
    joint = next(r for r in rk if r["variant"] == "recluster --fit joint")
    keep = next(r for r in rk if r["variant"] == "recluster --fit keep")

    same = [s["histogram"]["kmeans_s"]["median"] / s["histogram"]["dp_s"]["median"] for s in speed["summary"]]
    raw = [s["raw"]["kmeans_s"]["median"] / s["raw"]["dp_s"]["median"] for s in speed["summary"]]
    worse = sum(s["tensors_dp_worse_than_kmeans"] for s in speed["summary"])
    fresh, again = deploy["fresh"], deploy["second"]
    lines = ([_bases_line(bases)] if bases else []) + [
        f"- **Fashion-MNIST, K = {k}, {target}:** `recluster --weight-budget` encodes the weights in {enc}x of the "
        f"usual tfmot flow's bytes at {acc} points of its accuracy, zipped {zipped}x smaller than the float model; "
        f"exactly {k} values per tensor gives {plain_enc}x ([benchmarks](docs/benchmarks.md)).",
        f"- **Restoring clusters (example, K = {before['clusters']}):** the joint fit brings up to "
        f"{max(before['distinct_per_tensor'])} values per tensor back to {max(joint['distinct_per_tensor'])} with "
        f"{keep['squared_error_vs_float'] / joint['squared_error_vs_float']:.0f}x less weight error than keeping the "
        f"scales, {joint['accuracy_delta_points']:+.1f} points, encoded weights "
        f"{joint['vela_encoded_weight_bytes'] / before['vela_encoded_weight_bytes']:.2f}x of before.",
        f"- **Rewriter:** on the same histograms the exact palette solver is {_span(same, '.0f')}x faster than "
        f"weighted KMeans, {_span(raw, '.0f')}x from MobileNetV2's {speed['summary'][0]['weights']:,} raw weights, and "
        + ("never worse." if worse == 0 else f"worse on {worse} tensors."),
        f"- **`make deploy TARGET={deploy['target']}`:** {fresh['wall_s']:.0f} s from nothing ({fresh['training_s']:.0f} s "
        f"of it training), {fresh['post_processing_s']:.1f} s of post-processing, {again['wall_s']:.1f} s for a "
        f"second run that does nothing.",
    ] + ([_output_aware_line(output_aware)] if output_aware else []) + (_rfc_lines(rfc) if rfc else []) + [
        f"- **Robustness:** {fuzz['mutated_cases']:,} fuzzed models through every stage with {len(fuzz['findings'])} "
        f"crashes, hangs or untyped errors ([robustness](docs/robustness.md)).",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sweep scaling


def sweep_scaling_table(doc: Doc) -> str:
    """`make sweep` with 1 and 2 parallel jobs: median wall times and the speed-up."""
    rows = [[f"`make -j{j} sweep`", str(len(doc["wall_s"][j])), f"{doc['median_s'][j]:.1f} s",
             ", ".join(f"{t:.1f}" for t in doc["wall_s"][j])] for j in ("1", "2")]
    rows.append(["speed-up of 2 jobs", "", f"{doc['speedup_2_jobs']:.2f}x", ""])
    note = (f"{doc['points']} sweep points (K) x {len(doc['targets'])} targets ({', '.join(doc['targets'])}), the example "
            f"trained once beforehand; {_machine(doc)}.")
    return _table(["run", "runs", "median wall time", "each run (s)"], rows) + "\n\n" + note


# --------------------------------------------------------------------------- the clustering RFC's table, the cascade

RFC_TFMOT_FLOAT = "tfmot flow, float .tflite (the RFC's measurement)"
RFC_USUAL, RFC_WEIGHTS, RFC_OUTPUTS = "tfmot flow, int8", "recluster, weight-space fit", "recluster, output-aware fit"
_RFC_VARIANTS = (RFC_TFMOT_FLOAT, RFC_USUAL, RFC_WEIGHTS, RFC_OUTPUTS)


def _variant(run: Doc, name: str) -> Doc | None:
    return next((v for v in run["variants"] if v["variant"] == name), None)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def base_models_table(doc: Doc) -> str:
    """The converged float base models (benchmarks/base_models.py): schedule, size, accuracies, training time."""
    s = doc["schedule"]
    rows = []
    for name, b in doc["models"].items():
        curve = b.get("curve") or []
        tail = curve[-4:]
        conv = (f"epochs {tail[0]['epoch']}-{tail[-1]['epoch']}: "
                + " / ".join(f"{100 * c['test_accuracy']:.2f}" for c in tail) + "%") if curve else "-"
        t = b.get("training_time_s")
        rows.append([f"`{name}`", f"`{b['trained_by']}`", f"{b['parameters']:,}", str(b["epochs"]),
                     _pct(b["float_accuracy"]), _pct(b["int8_accuracy"]), _kib(b["float_zipped_bytes"]),
                     _kib(b["int8_zipped_bytes"]), "-" if t is None else f"{t / 60:.0f} min", conv])
    note = (f"Schedule: {s['optimizer'].capitalize()}, learning rate {s['learning_rate']}, batch {s['batch']}, all "
            f"{s['train_images']:,} training images, seed {s['seed']}, no augmentation. Top-1 on the "
            f"{doc['test_images']:,}-image test set in LiteRT: the float .tflite, and the int8 model ({doc['int8']}). "
            f"Training times on {_machine(doc).split(',')[0]} shared with other work.")
    return _table(["network", "trained by", "parameters", "epochs", "float top-1", "int8 top-1", "float zipped KiB",
                   "int8 zipped KiB", "training time", "test top-1 after the last epochs"], rows) + "\n\n" + note


def _rfc_measured(doc: Doc) -> list[tuple[Doc, Doc]]:
    """(RFC row, its run) for every row measured so far, in the RFC's order."""
    return [(r, doc["runs"][f"{r['net']}/{r['config']}"]) for r in doc["rfc_rows"]
            if f"{r['net']}/{r['config']}" in doc["runs"]]


def _rfc_distinct(doc: Doc) -> list[tuple[Doc, Doc]]:
    """_rfc_measured without repeats: the MobileNetV2 rows run the same configs as MobileNetV1's on one network."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r, run in _rfc_measured(doc):
        if (r["net"], run["config_sha256"]) not in seen:
            seen.add((r["net"], run["config_sha256"]))
            out.append((r, run))
    return out


def _rfc_pending(doc: Doc) -> str:
    missing = [f"{r['rfc_model']}: {r['rfc_configuration']} (`{r['config']}`)" for r in doc["rfc_rows"]
               if f"{r['net']}/{r['config']}" not in doc["runs"]]
    return "" if not missing else "\n\nNot measured yet (run `benchmarks/rfc_table.py`): " + "; ".join(missing) + "."


def rfc_mapping_table(doc: Doc) -> str:
    """Each RFC row, the config that runs it here and what that config clusters."""
    rows = []
    for r, run in _rfc_measured(doc):
        layers = run["finetune"]["clustered_layers"]
        ks = ", ".join(f"{la['name']} {la['clusters']}" for la in layers) if len(layers) <= 4 else (
            f"{len(layers)} layers at " + "/".join(str(k) for k in sorted({la['clusters'] for la in layers})))
        rows.append([f"{r['rfc_model']} ({r['rfc_dataset']}): {r['rfc_configuration']}", f"`{run['config_file']}`",
                     _cell(r["mapping"]), ks, f"{100 * run['clustered_weight_fraction']:.0f}%"])
    return _table(["RFC row", "config", "here", "clustered here (layer K)", "share of kernel weights clustered"], rows)


def _published(x: float) -> str:
    """A figure as the RFC printed it (two decimals, or a whole number where it gave one)."""
    return f"{x:.0f}" if x == int(x) else f"{x:.2f}"


def rfc_results_table(doc: Doc) -> str:
    """The RFC's figures beside ours: accuracy change in points and size reduction (float zipped / zipped)."""
    header = ["RFC row", "RFC top-1", "RFC change", "RFC zipped MB", "RFC reduction", "here: float top-1, zipped KiB",
              "variant", "top-1", "change", "zipped KiB", "reduction"]
    rows = []
    for r, run in _rfc_measured(doc):
        base = doc["bases"][r["net"]]["float"]
        (a0, a1), (m0, m1) = r["rfc_top1_percent"], r["rfc_zipped_mb"]
        first = [f"{r['rfc_model']}: {r['rfc_configuration']}", f"{_published(a0)}% -> {_published(a1)}%",
                 f"{a1 - a0:+.2f}",
                 f"{m0:.2f} -> {m1:.2f}", f"{m0 / m1:.2f}x",
                 f"`{r['net']}`: {_pct(base['accuracy'])}, {_kib(base['zipped_bytes'])}"]
        for i, name in enumerate(_RFC_VARIANTS):
            v = _variant(run, name)
            if v is None:
                continue
            rows.append((first if i == 0 else [""] * len(first)) + [
                name, _pct(v["accuracy"]), f"{100 * (v['accuracy'] - base['accuracy']):+.2f}", _kib(v["zipped_bytes"]),
                f"{base['zipped_bytes'] / v['zipped_bytes']:.2f}x"])
    return _table(header, rows) + _rfc_float_note(doc) + _rfc_pending(doc)


def _rfc_float_note(doc: Doc) -> str:
    """How many distinct values the clustered kernels keep in the float .tflite: what limits its deflated size."""
    parts = []
    for r, run in _rfc_distinct(doc):
        v = _variant(run, RFC_TFMOT_FLOAT)
        if v is None or "tensors" not in v:
            continue
        layers = {la["name"]: la["clusters"] for la in run["finetune"]["clustered_layers"]}
        hits = [(t, k) for t in v["tensors"] for name, k in layers.items() if f"/{name}/" in t["name"]]
        if hits:
            worst = max(hits, key=lambda h: h[0]["distinct"] / h[1])
            parts.append(f"`{r['net']}` `{run['config']}` up to {worst[0]['distinct']:,} ({worst[1]} clusters, "
                         f"{worst[0]['weights']:,} weights)")
    if not parts:
        return ""
    return ("\n\nDistinct values per clustered kernel in the tfmot flow's float `.tflite` (what deflate sees): "
            + "; ".join(parts) + ". Where a network has BatchNorm the converter folds its per-channel scale into the "
            "kernel, so K clusters become up to K values per output channel and the float model deflates less.")


def rfc_vela_table(doc: Doc) -> str:
    """Vela's figures of every int8 variant of the RFC configs, with each network's unclustered int8 model first."""
    targets = doc["vela_targets"]
    header = ["network", "config", "variant", "time s", "top-1", "max values per tensor"]
    for t in targets:
        header += [f"{t} encoded weights KiB", f"{t} flash KiB", f"{t} Mcycles"]

    def line(net: str, config: str, variant: str, m: Doc, seconds: float | None = None) -> list[str]:
        cells = [f"`{net}`", config, variant, "-" if seconds is None else f"{seconds:.0f}", _pct(m["accuracy"]),
                 str(m["max_distinct_values"])]
        for t in targets:
            v = m["vela"][t]
            cells += [_kib(v["encoded_weight_bytes"]), _kib(v["flash_bytes"]), _mcycles(v["cycles_total"])]
        return cells

    rows, seen_nets = [], set()
    for r, run in _rfc_distinct(doc):
        net = r["net"]
        if net not in seen_nets:
            seen_nets.add(net)
            rows.append(line(net, "-", "int8, not clustered", doc["bases"][net]["int8"]))
        for name in _RFC_VARIANTS[1:]:
            v = _variant(run, name)
            if v is not None:
                seconds = run["finetune_time_s"] + run["quantize_time_s"] if name == RFC_USUAL else v.get("fit_s")
                rows.append(line(net, f"`{run['config']}`", name, v, seconds))
    return _table(header, rows) + ("\n\nTime: the tfmot flow's fine-tune and int8 conversion (cached runs keep "
                                   "their first time), or the rewrite's fit, on the machine named above.")


def rfc_vela_verdict(doc: Doc) -> str:
    """Per network and config: what the tfmot flow and the rewrite do to Vela's encoded weights (first target)."""
    t0, lines = doc["vela_targets"][0], []
    for r, run in _rfc_distinct(doc):
        plain = doc["bases"][r["net"]]["int8"]["vela"][t0]["encoded_weight_bytes"]
        usual, fitted = _variant(run, RFC_USUAL), _variant(run, RFC_OUTPUTS) or _variant(run, RFC_WEIGHTS)
        if usual is None or fitted is None:
            continue
        eu, ef = usual["vela"][t0]["encoded_weight_bytes"], fitted["vela"][t0]["encoded_weight_bytes"]
        lines.append(
            f"- `{r['net']}` `{run['config']}` ({100 * run['clustered_weight_fraction']:.0f}% of the kernel weights "
            f"clustered): the tfmot flow's int8 model encodes to {eu / plain:.2f}x of the unclustered int8 model's "
            f"weights on {t0}; {fitted['variant']} to {ef / plain:.2f}x ({ef / eu:.2f}x of the tfmot flow's) at "
            f"{100 * (fitted['accuracy'] - usual['accuracy']):+.2f} points against it"
            + (" (the layers at more than 32 clusters are beyond Vela's 32-entry palette either way)."
               if any(la["clusters"] > 32 for la in run["finetune"]["clustered_layers"]) else "."))
    return "\n".join(lines)


def _cascade_label(run: Doc) -> str:
    ft, q = run["finetune_config"], run["quantize_config"]
    text = f"pruned {100 * ft['prune']:.0f}%" if ft.get("prune") else "not pruned"
    if q.get("cluster_preserving_qat"):
        text += ", sparsity- and cluster-preserving QAT" if q.get("preserve_sparsity") else ", cluster-preserving QAT"
    return text


def _zero_share(m: Doc) -> str:
    return f"{100 * m['zero_weights'] / m['weights']:.1f}%"


def cascade_table(doc: Doc) -> str:
    """Prune -> cluster -> int8: sparsity, accuracy, zipped size and Vela's encoded weights, against not pruning."""
    targets = doc["vela_targets"]
    header = ["network", "K", "training", "variant", "zero weights", "value entropy, bits per weight", "top-1",
              "vs float", "zipped KiB", "vs not pruned"]
    for t in targets:
        header += [f"{t} encoded weights KiB", "vs not pruned"]
    rows = []
    for item in doc["cascade"]:
        run = doc["runs"].get(f"{item['net']}/{item['config']}")
        if run is None:
            continue
        k = run["finetune_config"]["clusters"]
        plain = doc["runs"].get(f"{item['net']}/cascade_k{k}")
        base = doc["bases"][item["net"]]["float"]
        cqat = run["quantize_config"].get("cluster_preserving_qat")
        for name in (RFC_USUAL,) if cqat else _RFC_VARIANTS[1:]:
            v = _variant(run, name)
            if v is None:
                continue
            ref = _variant(plain, name) if plain is not None and not cqat else (
                _variant(plain, RFC_USUAL) if plain is not None else None)
            cells = [f"`{item['net']}`", str(k), _cascade_label(run), name + (" (after QAT)" if cqat else ""),
                     _zero_share(v), "-" if v.get("entropy_bits_per_weight") is None else
                     f"{v['entropy_bits_per_weight']:.2f}",
                     _pct(v["accuracy"]), f"{100 * (v['accuracy'] - base['accuracy']):+.2f}",
                     _kib(v["zipped_bytes"]), "-" if ref is None or ref is v else f"{v['zipped_bytes'] / ref['zipped_bytes']:.2f}x"]
            for t in targets:
                e = v["vela"][t]["encoded_weight_bytes"]
                cells += [_kib(e), "-" if ref is None or ref is v else f"{e / ref['vela'][t]['encoded_weight_bytes']:.2f}x"]
            rows.append(cells)
    missing = [f"`{c['net']}` `{c['config']}`" for c in doc["cascade"] if f"{c['net']}/{c['config']}" not in doc["runs"]]
    pending = "" if not missing else "\n\nNot measured yet (run `benchmarks/rfc_table.py --only cascade`): " + \
        ", ".join(missing) + "."
    return _table(header, rows) + pending


def _cascade_pairs(doc: Doc) -> list[tuple[str, int, Doc, Doc]]:
    """(network, K, not pruned, pruned 50%): the rewrite with the fit a deploy with data uses (output-aware)."""
    pairs = []
    for net in dict.fromkeys(c["net"] for c in doc["cascade"]):
        for k in (16, 32):
            plain, pruned = doc["runs"].get(f"{net}/cascade_k{k}"), doc["runs"].get(f"{net}/cascade_k{k}_prune50")
            if plain is not None and pruned is not None:
                pairs.append((net, k, _variant(plain, RFC_OUTPUTS), _variant(pruned, RFC_OUTPUTS)))
    return pairs


def cascade_verdict(doc: Doc) -> str:
    """Per network and K: what pruning half the weights adds to the rewrite (output-aware fit)."""
    t0 = doc["vela_targets"][0]
    lines = []
    for net, k, a, b in _cascade_pairs(doc):
        ea, eb = a["vela"][t0]["encoded_weight_bytes"], b["vela"][t0]["encoded_weight_bytes"]
        lines.append(
            f"- `{net}`, K = {k}, output-aware fit: pruning to {_zero_share(b)} zero weights takes {t0}'s encoded "
            f"weights from {_kib(ea)} to {_kib(eb)} KiB ({eb / ea:.2f}x) and the zipped model from "
            f"{_kib(a['zipped_bytes'])} to {_kib(b['zipped_bytes'])} KiB ({b['zipped_bytes'] / a['zipped_bytes']:.2f}x), "
            f"at {100 * (b['accuracy'] - a['accuracy']):+.2f} points ({_pct(a['accuracy'])} -> {_pct(b['accuracy'])}).")
    return "\n".join(lines)


def centroid_init_table(compression: Doc, rfc: Doc) -> str:
    """tfmot's centroid initialisation against Vela's encoding: the compression benchmark (k-means++, tfmot's
    default) beside the cascade's unpruned ConvNet runs (linear, as the RFC): same base, same fine-tune recipe."""
    t0, rows = rfc["vela_targets"][0], []
    for k in (16, 32):
        run = rfc["runs"].get(f"convnet/cascade_k{k}")
        for ours, theirs in (("usual flow", RFC_USUAL), (FASHION_TOOLCHAIN, RFC_WEIGHTS)):
            c = next((r for r in compression["rows"] if r["model"] == "convnet" and r["clusters"] == k
                      and r["variant"] == ours), None)
            v = _variant(run, theirs) if run is not None else None
            if c is None or v is None:
                continue
            ec, ev = c["vela"][t0]["encoded_weight_bytes"], v["vela"][t0]["encoded_weight_bytes"]
            rows.append([str(k), theirs, _pct(c["accuracy"]), _pct(v["accuracy"]), _kib(ec), _kib(ev), f"{ev / ec:.2f}x"])
    if not rows:
        return "Not measured yet (run `benchmarks/rfc_table.py --only cascade --nets convnet`)."
    return _table(["K", "variant", "top-1, k-means++ init", "top-1, linear init",
                   f"{t0} encoded weights KiB, k-means++", "linear", "linear / k-means++"], rows)


# --------------------------------------------------------------------------- the output-aware fit


def output_aware_table(doc: Doc) -> str:
    """Every row of benchmarks/output_aware.py: accuracy, agreement, encoded weights, values per tensor, fit time."""
    rows = []
    for r in doc["rows"]:
        agree = "-" if r.get("top1_agreement_with_int8") is None else f"{r['top1_agreement_with_int8']:.4f}"
        fit = "-" if r.get("fit_s") is None else f"{r['fit_s']:.1f}"
        rows.append([r["model"], str(r["clusters"] or "-"), _cell(r["variant"]), f"{100 * r['accuracy']:.2f}%", agree,
                     f"{r['encoded_ratio_vs_int8']:.3f}x", str(r["max_values_per_tensor"]), fit])
    text = _table(["model", "K", "variant", "accuracy", "top-1 agreement with int8", "encoded weights vs int8",
                   "max values per tensor", "fit s"], rows)
    t = doc.get("timing_mobilenet_v2_224")
    if t:
        text += (f"\n\nFit time on {t['model']}, K={t['clusters']}, {t['segments_1']['samples']} calibration samples: "
                 f"weight-space {t['weight_space_fit_s']:.1f} s; output-aware {t['output_aware_fit_s_segments_1']:.1f} s "
                 f"(1 segment), {t['output_aware_fit_s_segments_auto']:.1f} s (automatic: "
                 f"{t['segments_auto']['segments']} segment(s)).")
    return text + f"\n\nMachine: {_machine(doc)}; {doc['dataset']['calibration']}; Vela {doc['settings']['vela']}, " \
                  f"{doc['settings']['target']}."


def _oa_row(doc: Doc, model: str, variant: str) -> Doc | None:
    return next((r for r in doc["rows"] if r["model"] == model and r["variant"] == variant), None)


def output_aware_summary(doc: Doc) -> str:
    """One line per network: post-training K=8 (depthwise included) and K=16, weight-space against output-aware."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in doc["rows"]):
        base = _oa_row(doc, model, "plain int8")
        parts = []
        for k, suffix in ((8, ", depthwise included"), (16, "")):
            w = _oa_row(doc, model, f"post-training, weight-space fit{suffix}")
            o = _oa_row(doc, model, f"post-training, output-aware fit{suffix}")
            if w and o:
                parts.append(f"K={k}: {_pct(w['accuracy'])} with the weight-space fit, {_pct(o['accuracy'])} output-aware "
                             f"(encoded weights {o['encoded_ratio_vs_int8']:.2f}x int8)")
        auto = _oa_row(doc, model, "post-training, --clusters auto with data (top-1 agreement >= 99.5% on calibration)")
        if auto:
            parts.append(f"`--clusters auto`: {_pct(auto['accuracy'])}, agreement {auto['top1_agreement_with_int8']:.3f}, "
                         f"{auto['encoded_ratio_vs_int8']:.2f}x")
        if base and parts:
            lines.append(f"- `{model}` (plain int8 {_pct(base['accuracy'])}): " + "; ".join(parts) + ".")
    return "\n".join(lines) + f"\n\nFull test set ({doc['dataset']['test_images']:,} images); " \
                              f"{doc['dataset']['calibration']}."
