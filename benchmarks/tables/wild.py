"""Models from the wild: a float .tflite through ai-edge-quantizer (benchmarks/float_tflite_in.py) and the
MediaPipe / other-converter corpus (benchmarks/wild_corpus.py)."""
from __future__ import annotations

from .markdown import Doc, cell, table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def float_tflite_table(doc: Doc) -> str:
    """Per network: float, TF converter int8, ai-edge-quantizer int8 and its K rewrite, on the test set."""
    header = ["network", "float", "TF converter int8", "ai-edge-quantizer int8", f"+ rewrite K={doc['clusters']}",
              "points below TF int8", f"within {doc['goal_points']:g}", "encoded weights B int8 -> K"]
    rows = []
    for r in doc["rows"]:
        a, e = r["accuracy"], r["encoded_weight_bytes"]
        rows.append([f"`{r['model']}`", _pct(a["float"]), _pct(a["tf_int8"]), _pct(a["aeq_int8"]), _pct(a["aeq_k16"]),
                     f"{r['points_below_tf_int8']:.2f}", "yes" if r["within_goal"] else "NO",
                     f"{e['aeq_int8']:,} -> {e['aeq_k16']:,}"])
    return table(header, rows)


def _fidelity(f: dict | None, not_run: str | None) -> str:
    if f is None:
        return cell(f"not run: {not_run}" if not_run else "-")
    parts = []
    for o in f["outputs"]:
        sq = "identical" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f} dB"
        parts.append(f"{o['name']}: {sq}")
    return cell("; ".join(parts))


def wild_corpus_table(doc: Doc) -> str:
    """Per third-party model and target: quantized or not, rewritten or not, NPU / CPU operators, Vela's encoded
    weights before -> after, fidelity per output against the float model; or the one-line reason it was refused."""
    header = ["model", "source", "target", "quantized", "rewritten", "NPU / CPU ops",
              "encoded weights B before -> after", "float vs int8, per output", "outcome"]
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
                         _fidelity(r.get("fidelity"), r.get("fidelity_not_run")), cell(m["outcome"])])
    n, total = len(doc["models"]), doc.get("models_in_wheel", len(doc["models"]))
    note = "" if n == total else f"\n\n{n} of the wheel's {total} models measured so far (`make corpus-wild` runs all)."
    return table(header, rows) + note
