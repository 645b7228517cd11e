"""Models from the wild: a float .tflite through ai-edge-quantizer (benchmarks/float_tflite_in.py) and the
MediaPipe / other-converter corpus (benchmarks/wild_corpus.py)."""
from __future__ import annotations

from .markdown import Doc, cell, span, table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def float_tflite_table(doc: Doc) -> str:
    """Per network: float, TF converter int8, ai-edge-quantizer int8 and its K rewrite, on the test set."""
    header = ["network", "float", "TF converter int8", "ai-edge-quantizer int8", f"+ rewrite K={doc['clusters']}",
              "points below TF int8", f"within {doc['goal_points']:g}", "encoded weights B int8 -> K",
              "top-1 agreement: float vs int8 / int8 vs K (held back)"]
    rows = []
    for r in doc["rows"]:
        a, e = r["accuracy"], r["encoded_weight_bytes"]
        q, w = r["quantize_fidelity"], r["rewrite_fidelity"]
        rows.append([f"`{r['model']}`", _pct(a["float"]), _pct(a["tf_int8"]), _pct(a["aeq_int8"]), _pct(a["aeq_k16"]),
                     f"{r['points_below_tf_int8']:.2f}", "yes" if r["within_goal"] else "NO",
                     f"{e['aeq_int8']:,} -> {e['aeq_k16']:,}",
                     f"{_ratio(q['top1_agreement'])} / {_ratio(w['top1_agreement'])} ({q['inputs']})"])
    return table(header, rows)


def float_tflite_verdict(doc: Doc) -> str:
    """What the table says: the quantizer's int8 against the converter's, the rewrite's cost, the goal's margin."""
    rows = doc["rows"]
    acc = [r["accuracy"] for r in rows]
    quant = [100 * (a["tf_int8"] - a["aeq_int8"]) for a in acc]
    rewrite = [100 * (a["aeq_int8"] - a["aeq_k16"]) for a in acc]
    worst = max(r["points_below_tf_int8"] for r in rows)
    met = sum(r["within_goal"] for r in rows)
    enc = span([r["encoded_weight_bytes"]["aeq_k16"] / r["encoded_weight_bytes"]["aeq_int8"] for r in rows], ".2f")
    goal = (f"the goal holds on all {len(rows)} with {doc['goal_points'] - worst:.2f} points or more to spare"
            if met == len(rows) else f"the goal holds on {met} of {len(rows)} (worst {worst:.2f} points below)")
    return (f"On {len(rows)} networks the int8 model ai-edge-quantizer makes from the float file lies "
            f"{span(quant, '+.2f')} points below the TF converter's int8 model, and the K = {doc['clusters']} rewrite "
            f"costs {span(rewrite, '.2f')} points more: {goal}, at {enc}x of the int8 model's encoded weights.")


def _output(o: dict) -> str:
    sq = "identical" if o.get("identical") else "SQNR not measurable" if o["sqnr_db"] is None else f"SQNR {o['sqnr_db']:.1f} dB"
    if o["kind"] == "values":
        return f"{o['name']} (values): {sq}"
    value = "not measurable" if o["agreement"] is None else f"{o['agreement']:.3f}"
    return f"{o['name']} ({o['kind'].replace('_', ' ')}): {o['metric']} {value}, {sq}"


def _fidelity(f: dict | None) -> str:
    """Float vs int8 per output, by the measure of its kind; or why it was not run."""
    if f is None:
        return "-"
    if f.get("not_run"):
        return cell(f"not run: {f['not_run']}")
    return cell("; ".join(_output(o) for o in f["outputs"]))


def wild_corpus_table(doc: Doc) -> str:
    """Per third-party model and target: quantized or not, rewritten or not, NPU / CPU operators, Vela's encoded
    weights before -> after, fidelity per output against the float model (none for a model that came int8: other
    converters' rows); or the one-line reason it was refused."""
    header = ["model", "source", "target", "quantized", "rewritten", "NPU / CPU ops",
              "encoded weights B before -> after", "float vs int8, per output (kind): measure, SQNR", "outcome"]
    rows = []
    for r in doc["models"]:
        if r.get("refused"):
            rows.append([f"`{r['model']}`", cell(r["source"]), "both", "-", "-", "-", "-", "-",
                         cell(f"refused (exit {r['exit_code']}): {r['refused']}")])
            continue
        for t, m in r["targets"].items():
            rows.append([f"`{r['model']}`", cell(r["source"]), t, r["quantized"], r["rewritten"],
                         f"{m['npu_operators']} / {m['cpu_operators']}",
                         f"{m['encoded_before_bytes']:,} -> {m['encoded_after_bytes']:,}",
                         _fidelity(r.get("fidelity")), cell(m["outcome"])])
    n = sum(r["source"].startswith("mediapipe") for r in doc["models"])  # other converters' models come after
    total = doc.get("models_in_wheel", n)
    note = "" if n == total else f"\n\n{n} of the wheel's {total} models measured so far (`make corpus-wild` runs all)."
    return table(header, rows) + note
