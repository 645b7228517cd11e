"""The README's results summary and where each results file was measured."""
from __future__ import annotations

from .fashion import FASHION_PLAN, FASHION_TOOLCHAIN
from .markdown import Doc, pct, span, table
from .rewriter import output_aware_row
from .rfc import RFC_OUTPUTS, RFC_TFMOT_FLOAT, RFC_USUAL, cascade_pairs, rfc_measured, rfc_variant
from .robustness import fuzz_summary_line

# --------------------------------------------------------------------------- where each results file was measured


def results_machines(compression: Doc, speed: Doc, restore: Doc, deploy: Doc, compile_: Doc, fuzz: Doc,
                     bad: Doc, corpus: Doc, output_aware: Doc | None = None, sweep: Doc | None = None,
                     base: Doc | None = None, rfc: Doc | None = None, executors: Doc | None = None,
                     strategies: Doc | None = None, verdict: Doc | None = None, ethos_n: Doc | None = None,
                     ethos_n_networks: Doc | None = None, rate_distortion: Doc | None = None,
                     float_in: Doc | None = None, wild: Doc | None = None) -> str:
    """Where each results file was measured: the machine, and the load on it when recorded."""
    named = [("converged base models", "base_models", base),
             ("compression on Fashion-MNIST", "compression_fashion_mnist", compression),
             ("the clustering RFC's table, the cascade", "rfc_table", rfc),
             ("rewriter speed", "recluster_speed", speed), ("restoring the cluster count", "restore_clusters", restore),
             ("`make deploy` time", "deploy_time", deploy), ("compile speed", "compile_speed", compile_),
             ("`make sweep` scaling", "sweep_scaling", sweep),
             ("fuzzing", "fuzz_models", fuzz), ("bad inputs", "bad_inputs", bad),
             ("real architectures through deploy", "corpus_deploy", corpus),
             ("the output-aware fit", "output_aware", output_aware),
             ("the sweep on make and on Ray", "sweep_executors", executors),
             ("the fine-tune under tf.distribute strategies", "finetune_strategies", strategies),
             ("the held-back check against a test split", "verdict", verdict),
             ("Ethos-N78: the model against Arm's estimator", "ethos_n_calibration", ethos_n),
             ("Ethos-N78: whole networks", "ethos_n_networks", ethos_n_networks),
             ("rate-distortion: accuracy against Vela's encoded weights", "rate_distortion", rate_distortion),
             ("a float .tflite through ai-edge-quantizer", "float_tflite_in", float_in),
             ("models from the wild (MediaPipe, other converters)", "wild_corpus", wild)]
    rows = []
    for label, stem, doc in named:
        if doc is None:
            continue
        m = doc.get("machine", {})
        # the load lives in "machine" for most results files, at the top for those written beside machine()
        load = m.get("load_average_start", doc.get("load_avg_start"))
        end = m.get("load_average_end", doc.get("load_avg_end"))
        script = "bad_inputs_table" if stem == "bad_inputs" else stem
        rows.append([label, f"`benchmarks/{script}.py`", f"`{stem}.json`",
                     f"{m.get('machine', '?')}, {m.get('cpus', '?')} cores, Python {m.get('python', '?')}",
                     "-" if load is None or end is None else f"{load[0]:.1f} to {end[0]:.1f}"])
    return table(["benchmark", "script", "results", "machine", "load average (start to end)"], rows)


# --------------------------------------------------------------------------- the README's summary


def _output_aware_line(doc: Doc) -> str:
    """Post-training K=8 (depthwise included) on every network: output-aware against weight-space, in points of int8."""
    drops_w, drops_o, ratio, nets = [], [], [], []
    for model in dict.fromkeys(r["model"] for r in doc["rows"]):
        base = output_aware_row(doc, model, "plain int8")
        w = output_aware_row(doc, model, "post-training, weight-space fit, depthwise included")
        o = output_aware_row(doc, model, "post-training, output-aware fit, depthwise included")
        if base and w and o:
            nets.append(model)
            drops_w.append(100 * (w["accuracy"] - base["accuracy"]))
            drops_o.append(100 * (o["accuracy"] - base["accuracy"]))
            ratio.append(o["encoded_ratio_vs_int8"])
    return (f"- **Post-training K = 8 with calibration data ({len(nets)} Fashion-MNIST networks with BatchNorm and "
            f"depthwise layers):** the output-aware fit keeps plain int8's accuracy within {span(drops_o, '+.1f')} "
            f"points where the weight-space fit changes it by {span(drops_w, '+.1f')}, at {span(ratio, '.2f')}x of int8's encoded "
            f"weights ([rewriter](docs/rewriter.md#output-aware-fit-palettes-from-calibration-data)).")


_NET_NAMES = {"convnet": "ConvNet", "convnet_bn": "BN ConvNet", "mobilenet_v2": "MobileNetV2-style",
              "ds_cnn": "DS-CNN-style"}


def _bases_line(doc: Doc) -> str:
    """The converged float base models and the schedule that trained them."""
    s, models = doc["schedule"], doc["models"]
    accs = ", ".join(f"{_NET_NAMES.get(n, n)} {pct(b['float_accuracy'])}" for n, b in models.items())
    epochs = span([float(b["epochs"]) for b in models.values()], ".0f")
    return (f"- **Base models, trained to convergence on Fashion-MNIST:** float top-1 {accs} on the "
            f"{doc['test_images']:,}-image test set, after {epochs} epochs of {s['optimizer'].capitalize()} "
            f"({s['learning_rate']}, batch {s['batch']}, all {s['train_images']:,} training images, seed {s['seed']}) "
            f"([base models](docs/benchmarks.md#converged-base-models)).")


def _rfc_lines(doc: Doc) -> list[str]:
    """The RFC rows measured so far (figures published beside ours) and the cascade's effect on encoded weights."""
    lines, measured = [], rfc_measured(doc)
    if measured:
        parts = []
        for r, run in measured:
            base = doc["bases"][r["net"]]["float"]
            (a0, a1), (m0, m1) = r["rfc_top1_percent"], r["rfc_zipped_mb"]
            ours = []
            for name, label in ((RFC_TFMOT_FLOAT, "tfmot flow's float .tflite"), (RFC_OUTPUTS, "this toolchain")):
                v = rfc_variant(run, name)
                if v is not None:
                    ours.append(f"{label} {100 * (v['accuracy'] - base['accuracy']):+.2f} / "
                                f"{base['zipped_bytes'] / v['zipped_bytes']:.1f}x")
            usual, fitted, t0 = rfc_variant(run, RFC_USUAL), rfc_variant(run, RFC_OUTPUTS), doc["vela_targets"][0]
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
    t0, pairs = doc["vela_targets"][0], cascade_pairs(doc)
    per_net = []
    for net in dict.fromkeys(n for n, _, _, _ in pairs):
        mine = [(a, b) for n, _, a, b in pairs if n == net]
        enc = [b["vela"][t0]["encoded_weight_bytes"] / a["vela"][t0]["encoded_weight_bytes"] for a, b in mine]
        acc = [100 * (b["accuracy"] - a["accuracy"]) for a, b in mine]
        per_net.append(f"{_NET_NAMES.get(net, net)} {span(enc, '.2f')}x at {span(acc, '+.2f')} points")
    if per_net:
        lines.append(f"- **Prune, cluster, quantize (K = 16 and 32):** 50% magnitude pruning before clustering takes "
                     f"{t0}'s encoded weights to these multiples of clustering alone: " + "; ".join(per_net)
                     + " (both rewritten with the output-aware fit; "
                     "[cascade](docs/benchmarks.md#the-cascade-prune-cluster-quantize)).")
    return lines


def _verdict_line(doc: Doc) -> str:
    rows = doc["rows"]
    nets = len({r["model"] for r in rows})
    ks = " and ".join(str(k) for k in sorted({r["clusters"] for r in rows}))
    old = span([r["in_sample_top1_agreement"] for r in rows], ".3f")
    return (f"- **The agreement printed is measured on samples the fit never saw:** on {nets} Fashion-MNIST networks at "
            f"K = {ks} it lies within {span([r['gap'] for r in rows], '.4f')} of the agreement on the "
            f"{rows[0]['test_samples']:,}-image test split, where the old in-sample check printed {old} "
            "([held-back check](docs/benchmarks.md#the-held-back-check-against-a-test-split)).")


def _float_tflite_line(doc: Doc) -> str:
    rows = doc["rows"]
    met = sum(r["within_goal"] for r in rows)
    gaps = span([r["points_below_tf_int8"] for r in rows], ".2f")
    enc = span([r["encoded_weight_bytes"]["aeq_k16"] / r["encoded_weight_bytes"]["aeq_int8"] for r in rows], ".2f")
    return (f"- **A float `.tflite` in:** deployed from its float file with {doc['calibration_images']} unlabelled "
            f"calibration images (ai-edge-quantizer int8, then K = {doc['clusters']}, {doc['target']}), "
            f"{len(rows)} Fashion-MNIST networks end {gaps} points below the TF converter's int8 model on the "
            f"{doc['test_images']:,}-image test set (goal: within {doc['goal_points']:g}, met by {met} of {len(rows)}), "
            f"encoded weights {enc}x of the int8 model's "
            "([float .tflite in](docs/benchmarks.md#a-float-fashion-mnist-tflite-through-ai-edge-quantizer)).")


def results_summary(compression: Doc, restore: Doc, speed: Doc, deploy: Doc, fuzz: Doc,
                    output_aware: Doc | None = None, bases: Doc | None = None, rfc: Doc | None = None,
                    verdict: Doc | None = None, float_in: Doc | None = None) -> str:
    """The front page's results, one line per finding, each from one results document."""
    k = compression["targets_checked_at_clusters"]
    target = compression["vela_targets"][0]
    plan = [c for c in compression["targets"] if c["clusters"] == k and c["variant"] == FASHION_PLAN]
    plain = [c for c in compression["targets"] if c["clusters"] == k and c["variant"] == FASHION_TOOLCHAIN]
    enc = span([c["encoded_ratio_vs_usual"][target] for c in plan], ".2f")
    zipped = span([c["zip_factor_vs_float"] for c in plan], ".1f")
    acc = span([c["accuracy_vs_usual_points"] for c in plan], "+.2f")
    plain_enc = span([c["encoded_ratio_vs_usual"][target] for c in plain], ".2f")

    rk = [r for r in restore["rows"] if r["clusters"] == min(r["clusters"] for r in restore["rows"])]
    before = next(r for r in rk if r["variant"].startswith("before"))
    joint = next(r for r in rk if r["variant"] == "recluster --fit joint")
    keep = next(r for r in rk if r["variant"] == "recluster --fit keep")

    same = [s["histogram"]["kmeans_s"]["median"] / s["histogram"]["dp_s"]["median"] for s in speed["summary"]]
    raw = [s["raw"]["kmeans_s"]["median"] / s["raw"]["dp_s"]["median"] for s in speed["summary"]]
    worse = sum(s["tensors_dp_worse_than_kmeans"] for s in speed["summary"])
    fresh, again = deploy["fresh"], deploy["second"]
    lines = ([_bases_line(bases)] if bases else []) + [
        (f"- **Fashion-MNIST, K = {k}, {target}:** `recluster --weight-budget` encodes the weights in {enc}x of the "
         f"usual tfmot flow's bytes at {acc} points of its accuracy, zipped {zipped}x smaller than the float model; "
         f"exactly {k} values per tensor gives {plain_enc}x ([benchmarks](docs/benchmarks.md))."),
        (f"- **Restoring clusters (example, K = {before['clusters']}):** the joint fit brings up to "
         f"{max(before['distinct_per_tensor'])} values per tensor back to {max(joint['distinct_per_tensor'])} with "
         f"{keep['squared_error_vs_float'] / joint['squared_error_vs_float']:.0f}x less weight error than keeping the "
         f"scales, {joint['accuracy_delta_points']:+.1f} points, encoded weights "
         f"{joint['vela_encoded_weight_bytes'] / before['vela_encoded_weight_bytes']:.2f}x of before."),
        (f"- **Rewriter:** on the same histograms the exact palette solver is {span(same, '.0f')}x faster than "
         f"weighted KMeans, {span(raw, '.0f')}x from MobileNetV2's {speed['summary'][0]['weights']:,} raw weights, and "
         + ("never worse." if worse == 0 else f"worse on {worse} tensors.")),
        (f"- **`make deploy TARGET={deploy['target']}`:** {fresh['wall_s']:.0f} s from nothing "
         f"({fresh['training_s']:.0f} s of it training), {fresh['post_processing_s']:.1f} s of post-processing, "
         f"{again['wall_s']:.1f} s for a second run that does nothing."),
    ] + ([_output_aware_line(output_aware)] if output_aware else []) + (_rfc_lines(rfc) if rfc else []) + (
        [_verdict_line(verdict)] if verdict else []) + ([_float_tflite_line(float_in)] if float_in else []) + [
        fuzz_summary_line(fuzz)]
    return "\n".join(lines)
