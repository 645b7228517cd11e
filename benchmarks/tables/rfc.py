"""The clustering RFC's results table reproduced in form, the prune-cluster-quantize cascade and the
centroid initialisation (benchmarks/rfc_table.py)."""
from __future__ import annotations

from .fashion import FASHION_TOOLCHAIN
from .markdown import Doc, cell, kib, mcycles, pct, table

RFC_TFMOT_FLOAT = "tfmot flow, float .tflite (the RFC's measurement)"
RFC_USUAL, RFC_WEIGHTS, RFC_OUTPUTS = "tfmot flow, int8", "recluster, weight-space fit", "recluster, output-aware fit"
_RFC_VARIANTS = (RFC_TFMOT_FLOAT, RFC_USUAL, RFC_WEIGHTS, RFC_OUTPUTS)


def rfc_variant(run: Doc, name: str) -> Doc | None:
    return next((v for v in run["variants"] if v["variant"] == name), None)


def rfc_measured(doc: Doc) -> list[tuple[Doc, Doc]]:
    """(RFC row, its run) for every row measured so far, in the RFC's order."""
    return [(r, doc["runs"][f"{r['net']}/{r['config']}"]) for r in doc["rfc_rows"]
            if f"{r['net']}/{r['config']}" in doc["runs"]]


def _rfc_distinct(doc: Doc) -> list[tuple[Doc, Doc]]:
    """rfc_measured without repeats: the MobileNetV2 rows run the same configs as MobileNetV1's on one network."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r, run in rfc_measured(doc):
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
    for r, run in rfc_measured(doc):
        layers = run["finetune"]["clustered_layers"]
        ks = ", ".join(f"{la['name']} {la['clusters']}" for la in layers) if len(layers) <= 4 else (
            f"{len(layers)} layers at " + "/".join(str(k) for k in sorted({la['clusters'] for la in layers})))
        rows.append([f"{r['rfc_model']} ({r['rfc_dataset']}): {r['rfc_configuration']}", f"`{run['config_file']}`",
                     cell(r["mapping"]), ks, f"{100 * run['clustered_weight_fraction']:.0f}%"])
    return table(["RFC row", "config", "here", "clustered here (layer K)", "share of kernel weights clustered"], rows)


def _published(x: float) -> str:
    """A figure as the RFC printed it (two decimals, or a whole number where it gave one)."""
    return f"{x:.0f}" if x == int(x) else f"{x:.2f}"


def rfc_results_table(doc: Doc) -> str:
    """The RFC's figures beside ours: accuracy change in points and size reduction (float zipped / zipped)."""
    header = ["RFC row", "RFC top-1", "RFC change", "RFC zipped MB", "RFC reduction", "here: float top-1, zipped KiB",
              "variant", "top-1", "change", "zipped KiB", "reduction"]
    rows = []
    for r, run in rfc_measured(doc):
        base = doc["bases"][r["net"]]["float"]
        (a0, a1), (m0, m1) = r["rfc_top1_percent"], r["rfc_zipped_mb"]
        first = [f"{r['rfc_model']}: {r['rfc_configuration']}", f"{_published(a0)}% -> {_published(a1)}%",
                 f"{a1 - a0:+.2f}",
                 f"{m0:.2f} -> {m1:.2f}", f"{m0 / m1:.2f}x",
                 f"`{r['net']}`: {pct(base['accuracy'])}, {kib(base['zipped_bytes'])}"]
        for i, name in enumerate(_RFC_VARIANTS):
            v = rfc_variant(run, name)
            if v is None:
                continue
            rows.append((first if i == 0 else [""] * len(first)) + [
                name, pct(v["accuracy"]), f"{100 * (v['accuracy'] - base['accuracy']):+.2f}", kib(v["zipped_bytes"]),
                f"{base['zipped_bytes'] / v['zipped_bytes']:.2f}x"])
    return table(header, rows) + _rfc_float_note(doc) + _rfc_pending(doc)


def _rfc_float_note(doc: Doc) -> str:
    """How many distinct values the clustered kernels keep in the float .tflite: what limits its deflated size."""
    parts = []
    for r, run in _rfc_distinct(doc):
        v = rfc_variant(run, RFC_TFMOT_FLOAT)
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
        cells = [f"`{net}`", config, variant, "-" if seconds is None else f"{seconds:.0f}", pct(m["accuracy"]),
                 str(m["max_distinct_values"])]
        for t in targets:
            v = m["vela"][t]
            cells += [kib(v["encoded_weight_bytes"]), kib(v["flash_bytes"]), mcycles(v["cycles_total"])]
        return cells

    rows, seen_nets = [], set()
    for r, run in _rfc_distinct(doc):
        net = r["net"]
        if net not in seen_nets:
            seen_nets.add(net)
            rows.append(line(net, "-", "int8, not clustered", doc["bases"][net]["int8"]))
        for name in _RFC_VARIANTS[1:]:
            v = rfc_variant(run, name)
            if v is not None:
                seconds = run["finetune_time_s"] + run["quantize_time_s"] if name == RFC_USUAL else v.get("fit_s")
                rows.append(line(net, f"`{run['config']}`", name, v, seconds))
    return table(header, rows) + ("\n\nTime: the tfmot flow's fine-tune and int8 conversion (cached runs keep "
                                  "their first time), or the rewrite's fit, on the machine named above.")


def rfc_vela_verdict(doc: Doc) -> str:
    """Per network and config: what the tfmot flow and the rewrite do to Vela's encoded weights (first target)."""
    t0, lines = doc["vela_targets"][0], []
    for r, run in _rfc_distinct(doc):
        plain = doc["bases"][r["net"]]["int8"]["vela"][t0]["encoded_weight_bytes"]
        usual, fitted = rfc_variant(run, RFC_USUAL), rfc_variant(run, RFC_OUTPUTS) or rfc_variant(run, RFC_WEIGHTS)
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


# --------------------------------------------------------------------------- the cascade (prune, cluster, quantize)


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
            v = rfc_variant(run, name)
            if v is None:
                continue
            ref = rfc_variant(plain, name) if plain is not None and not cqat else (
                rfc_variant(plain, RFC_USUAL) if plain is not None else None)
            cells = [f"`{item['net']}`", str(k), _cascade_label(run), name + (" (after QAT)" if cqat else ""),
                     _zero_share(v), "-" if v.get("entropy_bits_per_weight") is None else
                     f"{v['entropy_bits_per_weight']:.2f}",
                     pct(v["accuracy"]), f"{100 * (v['accuracy'] - base['accuracy']):+.2f}",
                     kib(v["zipped_bytes"]), "-" if ref is None or ref is v else f"{v['zipped_bytes'] / ref['zipped_bytes']:.2f}x"]
            for t in targets:
                e = v["vela"][t]["encoded_weight_bytes"]
                cells += [kib(e), "-" if ref is None or ref is v else f"{e / ref['vela'][t]['encoded_weight_bytes']:.2f}x"]
            rows.append(cells)
    missing = [f"`{c['net']}` `{c['config']}`" for c in doc["cascade"] if f"{c['net']}/{c['config']}" not in doc["runs"]]
    pending = "" if not missing else "\n\nNot measured yet (run `benchmarks/rfc_table.py --only cascade`): " + \
        ", ".join(missing) + "."
    return table(header, rows) + pending


def cascade_pairs(doc: Doc) -> list[tuple[str, int, Doc, Doc]]:
    """(network, K, not pruned, pruned 50%): the rewrite with the fit a deploy with data uses (output-aware)."""
    pairs = []
    for net in dict.fromkeys(c["net"] for c in doc["cascade"]):
        for k in (16, 32):
            plain, pruned = doc["runs"].get(f"{net}/cascade_k{k}"), doc["runs"].get(f"{net}/cascade_k{k}_prune50")
            if plain is not None and pruned is not None:
                pairs.append((net, k, rfc_variant(plain, RFC_OUTPUTS), rfc_variant(pruned, RFC_OUTPUTS)))
    return pairs


def cascade_verdict(doc: Doc) -> str:
    """Per network and K: what pruning half the weights adds to the rewrite (output-aware fit)."""
    t0 = doc["vela_targets"][0]
    lines = []
    for net, k, a, b in cascade_pairs(doc):
        ea, eb = a["vela"][t0]["encoded_weight_bytes"], b["vela"][t0]["encoded_weight_bytes"]
        lines.append(
            f"- `{net}`, K = {k}, output-aware fit: pruning to {_zero_share(b)} zero weights takes {t0}'s encoded "
            f"weights from {kib(ea)} to {kib(eb)} KiB ({eb / ea:.2f}x) and the zipped model from "
            f"{kib(a['zipped_bytes'])} to {kib(b['zipped_bytes'])} KiB ({b['zipped_bytes'] / a['zipped_bytes']:.2f}x), "
            f"at {100 * (b['accuracy'] - a['accuracy']):+.2f} points ({pct(a['accuracy'])} -> {pct(b['accuracy'])}).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- centroid initialisation


def centroid_init_table(compression: Doc, rfc: Doc) -> str:
    """tfmot's centroid initialisation against Vela's encoding: the compression benchmark (k-means++, tfmot's
    default) beside the cascade's unpruned ConvNet runs (linear, as the RFC): same base, same fine-tune recipe."""
    t0, rows = rfc["vela_targets"][0], []
    for k in (16, 32):
        run = rfc["runs"].get(f"convnet/cascade_k{k}")
        for ours, theirs in (("usual flow", RFC_USUAL), (FASHION_TOOLCHAIN, RFC_WEIGHTS)):
            c = next((r for r in compression["rows"] if r["model"] == "convnet" and r["clusters"] == k
                      and r["variant"] == ours), None)
            v = rfc_variant(run, theirs) if run is not None else None
            if c is None or v is None:
                continue
            ec, ev = c["vela"][t0]["encoded_weight_bytes"], v["vela"][t0]["encoded_weight_bytes"]
            rows.append([str(k), theirs, pct(c["accuracy"]), pct(v["accuracy"]), kib(ec), kib(ev), f"{ev / ec:.2f}x"])
    if not rows:
        return "Not measured yet (run `benchmarks/rfc_table.py --only cascade --nets convnet`)."
    return table(["K", "variant", "top-1, k-means++ init", "top-1, linear init",
                  f"{t0} encoded weights KiB, k-means++", "linear", "linear / k-means++"], rows)
