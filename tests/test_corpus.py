"""Real third-party architectures end to end: each corpus model (tests/corpus_models.py, built with the
real converter) goes through ``deploy`` (post-training entry) on Ethos-U55 and Ethos-U85.

Checked against what the files themselves say, counted here independently:
- NPU / CPU / init operators per subgraph against the operators of Vela's output model (``ethos-u``
  custom operators and the operators left beside them) and the subgraph roles read from the input
  model (CALL_ONCE initialisers, WHILE cond/body);
- the stated after-vs-before agreement against running both models in LiteRT here (a stateful model
  as one stream, state carried);
- a stateful model, whose state operators outnumber its compute operators, is not refused.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_pipeline import deploy

from toolchain.tflite.inputs import random_inputs
from toolchain.tflite.interpreter import input_specs
from toolchain.tflite.model_io import read_model

pytestmark = [pytest.mark.tf, pytest.mark.slow]

TARGETS = ("ethos-u55-128", "ethos-u85-256")
VERIFY_SAMPLES = 24
_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def corpus_build(corpus_dir: Path, name: str) -> Path:
    """The model converted and deployed once per session; returns build/<model>."""
    if name not in _BUILT:
        import corpus_models

        model = corpus_dir / f"{name}.tflite"
        model.write_bytes(corpus_models.BUILDERS[name]())
        run = deploy(str(model), *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(corpus_dir / "b"),
                     "--verify-samples", str(VERIFY_SAMPLES), "--json")
        assert run.rc == 0, run.stderr
        _BUILT[name] = corpus_dir / "b" / name
    return _BUILT[name]


# ----------------------------------------------------------------------------- independent counting


def _op_name(model, op) -> str:
    from ai_edge_litert import schema_py_generated as schema

    oc = model.operatorCodes[op.opcodeIndex]
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    if code == schema.BuiltinOperator.CUSTOM:
        return oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}[code]


def _roles(model) -> list[str]:
    """per_inference / init per subgraph, from the CALL_ONCE and WHILE operators of the input model."""
    n = len(model.subgraphs)
    calls: dict[int, list[tuple[str, int]]] = {s: [] for s in range(n)}
    for s, sg in enumerate(model.subgraphs):
        for op in sg.operators:
            name, opts = _op_name(model, op), op.builtinOptions
            if name == "CALL_ONCE":
                calls[s].append(("init", opts.initSubgraphIndex))
            elif name == "WHILE":
                calls[s] += [("run", opts.condSubgraphIndex), ("run", opts.bodySubgraphIndex)]
    per_inference, todo = set(), [0]
    while todo:
        s = todo.pop()
        if s not in per_inference:
            per_inference.add(s)
            todo += [t for kind, t in calls[s] if kind == "run"]
    return ["per_inference" if s in per_inference else "init" for s in range(n)]


def _expected_placement(input_model, vela_model) -> list[dict]:
    out = []
    for s, (sg_in, sg_out) in enumerate(zip(input_model.subgraphs, vela_model.subgraphs)):
        names = [_op_name(vela_model, op) for op in sg_out.operators]
        ethos_u = names.count("ethos-u")
        cpu = len(names) - ethos_u
        out.append({"ethos_u_operators": ethos_u, "cpu_operators": cpu,
                    "npu_operators": len(sg_in.operators) - cpu if ethos_u else 0,
                    "cpu_ops": sorted(n for n in names if n != "ethos-u")})
    return out


CORPUS = ("mobilenet_v2", "resnet_like", "streaming_kws", "conv_16x8", "gather_on_cpu", "while_loop")


@pytest.mark.parametrize("name", CORPUS)
def test_placement_is_counted_per_subgraph_from_vela_output(corpus_dir, name):
    mdir = corpus_build(corpus_dir, name)
    input_model = read_model((corpus_dir / f"{name}.tflite").read_bytes())
    roles = _roles(input_model)
    for target in TARGETS:
        report = json.loads((mdir / target / "report" / "report.json").read_text())
        for variant in ("before", "after"):
            cdir = mdir / target / "compile" / variant
            c = json.loads((cdir / "compile.json").read_text())
            vela_model = read_model((cdir / c["vela_model"]).read_bytes())
            assert len(vela_model.subgraphs) == len(input_model.subgraphs)
            expected = _expected_placement(input_model, vela_model)
            got = c["placement"]["subgraphs"]
            assert [g["role"] for g in got] == roles
            for e, g in zip(expected, got):
                assert (g["ethos_u_operators"], g["cpu_operators"], g["npu_operators"]) == \
                    (e["ethos_u_operators"], e["cpu_operators"], e["npu_operators"]), (target, variant, g["index"])
                assert sorted(o["op"] for o in g["cpu"]) == e["cpu_ops"]
            per_inf = [e for e, r in zip(expected, roles) if r == "per_inference"]
            init_ops = sum(len(sg.operators) for sg, r in zip(input_model.subgraphs, roles) if r == "init")
            assert c["npu_operators"] == sum(e["npu_operators"] for e in per_inf) > 0
            assert c["cpu_operators"] == sum(e["cpu_operators"] for e in per_inf)
            assert c["init_operators"] == init_ops
            m = report["models"][variant]
            assert (m["npu_operators"], m["cpu_operators"], m["init_operators"]) == \
                (c["npu_operators"], c["cpu_operators"], c["init_operators"])
            # Vela's own count: its stdout's lines, for the last subgraph it compiled
            log = (cdir / c["files"]["log"]).read_text()
            vela = {k.lower(): int(n) for k, n in re.findall(r"^(NPU|CPU) operators = (\d+)", log, re.MULTILINE)}
            multi = len(input_model.subgraphs) > 1
            assert c["vela_operator_counts"] == m["vela_operator_counts"] == {**vela, "last_subgraph_only": multi}
            # never judged by state operators: nothing in the corpus runs mostly on the CPU
            assert c["status"] == ("ok" if c["cpu_operators"] == 0 else "partial_cpu")


def test_stateful_model_is_accepted_though_state_operators_outnumber_its_compute(corpus_dir):
    mdir = corpus_build(corpus_dir, "streaming_kws")
    c = json.loads((mdir / TARGETS[0] / "compile" / "after" / "compile.json").read_text())
    p = c["placement"]
    assert p["init_operators"] > 0 and p["cpu_macs"] == 0 < p["npu_macs"]
    cpu = [o for s in p["subgraphs"] if s["role"] == "per_inference" for o in s["cpu"]]
    kinds = {o["kind"] for o in cpu}
    assert "state" in kinds and {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} <= {o["op"] for o in cpu}
    assert c["cpu_operators"] > c["npu_operators"]  # what made the old op-count rule refuse it
    assert any("init subgraph" in w for w in c["warnings"])


def test_per_layer_view_covers_every_subgraph_holding_weights(corpus_dir):
    """Vela writes per-layer figures for its last subgraph only (the init subgraph of a stateful model): the
    weight-holding operators of subgraph 0 still get a row, their encoded sizes from Vela's weight encoder."""
    from toolchain.tflite.graph import find_weight_tensors

    mdir = corpus_build(corpus_dir, "streaming_kws")
    model = read_model((mdir / "recluster" / "model.tflite").read_bytes())
    weight_ops = {(w.subgraph, c) for w in find_weight_tensors(model) for c in w.consumers}
    assert {s for s, _ in weight_ops} == {0}
    c = json.loads((mdir / TARGETS[0] / "compile" / "after" / "compile.json").read_text())
    rows = {(la["subgraph"], la["source_operator"]): la for la in c["layers"]}
    assert weight_ops <= set(rows)
    for key in weight_ops:
        la = rows[key]
        assert la["cycles"] is None and la["encoded_weight_bytes"] > 0 and la["distinct_weight_values"] <= 16
    assert any("without cycles" in w for w in c["warnings"])
    report = json.loads((mdir / TARGETS[0] / "report" / "report.json").read_text())
    ops = [la["op"] for la in report["layers"] if la["models"]["after"]["encoded_weight_bytes"]]
    assert sorted(ops) == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    assert "Cycles `-`" in (mdir / TARGETS[0] / "report" / "report.md").read_text()


def test_cpu_fallback_and_while_body_are_named(corpus_dir):
    gather = json.loads((corpus_build(corpus_dir, "gather_on_cpu") / TARGETS[1] / "compile" / "after" /
                         "compile.json").read_text())
    cpu = [o for s in gather["placement"]["subgraphs"] for o in s["cpu"]]
    assert [(o["op"], o["kind"]) for o in cpu] == [("GATHER", "compute")]
    assert any("GATHER" in w for w in gather["warnings"])
    loop = json.loads((corpus_build(corpus_dir, "while_loop") / TARGETS[0] / "compile" / "after" /
                       "compile.json").read_text())
    body = max(loop["placement"]["subgraphs"], key=lambda s: s["ethos_u_operators"])
    assert body["index"] != 0 and body["role"] == "per_inference"
    assert "FULLY_CONNECTED" in {o["op"] for o in body["npu"]}


# ----------------------------------------------------------------------------- the stated agreement


def _run_stream(model_bytes: bytes, inputs) -> list[np.ndarray]:
    """LiteRT here, as a user would: one interpreter, invoked in order (state carries over)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model_bytes,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    got = []
    for row in inputs:
        for d, x in zip(ins, row):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        got.append(np.stack([interp.get_tensor(d["index"]).astype(np.int64) for d in outs]))
    return got


@pytest.mark.parametrize("name", CORPUS)
def test_rewritten_model_runs_in_litert_with_the_stated_agreement(corpus_dir, name):
    mdir = corpus_build(corpus_dir, name)
    before = (corpus_dir / f"{name}.tflite").read_bytes()
    after = (mdir / "recluster" / "model.tflite").read_bytes()
    report = json.loads((mdir / TARGETS[0] / "report" / "report.json").read_text())
    ver = report["recluster"]["verification"]
    assert ver["samples"] == VERIFY_SAMPLES and ver["inputs"] == f"{VERIFY_SAMPLES} random inputs (seed 0)"
    assert ver["evidence"] == "random"
    inputs = random_inputs(input_specs(before), VERIFY_SAMPLES, 0)
    ref = np.stack(_run_stream(before, inputs))[:, 0]  # single-output models: [sample, ...]
    new = np.stack(_run_stream(after, inputs))[:, 0]
    diff = np.abs(ref - new)
    assert ver["max_abs_diff_steps"] == diff.max()
    assert ver["mean_abs_diff_steps"] == pytest.approx(diff.mean())
    classes = ref.reshape(len(ref), -1).argmax(-1)
    if len(set(classes)) > 1:
        assert ver["top1_agreement"] == pytest.approx(np.mean(classes == new.reshape(len(new), -1).argmax(-1)))
    else:  # random inputs saturated it into one class: nothing to measure, and it says so
        assert ver["top1_agreement"] is None and "top-1 class was" in ver["top1_not_measurable"]
    varied = bool((ref.max(axis=0) - ref.min(axis=0)).max() > 1)
    assert ver["outputs"][0]["informative"] is varied is True  # every corpus model is alive on random inputs
    assert ver["stateful"] is (name == "streaming_kws")
    assert report["fidelity"]["top1_agreement"] == ver["top1_agreement"]
    low = ver["top1_agreement"] is not None and ver["top1_agreement"] < 0.99
    # random inputs are weak evidence: never "ok"
    assert report["fidelity"]["status"] == ("not_informative" if not ver["informative"] else "low" if low
                                            else "weak_evidence")
    for page in (mdir / TARGETS[0] / "report" / "index.html", mdir / "index.html"):  # never green on random inputs
        html = page.read_text()
        assert f'data-fidelity="{report["fidelity"]["status"]}"' in html and 'class="ok" data-fidelity' not in html
    if report["fidelity"]["status"] == "weak_evidence":
        assert "**Weak evidence**" in (mdir / TARGETS[0] / "report" / "report.md").read_text()
    if name == "streaming_kws":  # verified as a stream: each step alone would give other outputs
        fresh = np.stack([_run_stream(before, [row])[0] for row in inputs])[:, 0]
        assert not np.array_equal(fresh, ref)


def test_deploy_summary_shows_npu_cpu_init_and_fidelity(corpus_dir):
    mdir = corpus_build(corpus_dir, "streaming_kws")
    c = json.loads((mdir / TARGETS[0] / "compile" / "after" / "compile.json").read_text())
    run = deploy(str(corpus_dir / "streaming_kws.tflite"), *[a for t in TARGETS for a in ("--target", t)],
                 "--build-dir", str(corpus_dir / "b"), "--verify-samples", str(VERIFY_SAMPLES))
    assert run.rc == 0 and "nothing to do" in run.stdout
    assert f"NPU {c['npu_operators']} / CPU {c['cpu_operators']} (+{c['init_operators']} init)" in run.stdout
    # Vela's own count beside it, said to cover its last subgraph only (here the initialiser)
    vela = c["vela_operator_counts"]
    assert vela["last_subgraph_only"] and f"NPU {vela['npu']} / CPU {vela['cpu']} (last subgraph only)" in run.stdout
    fidelity = next(ln for ln in run.stdout.splitlines() if ln.startswith("after vs before: "))
    assert "top-1 agreement" in fidelity and "state carried" in fidelity and "output steps" in fidelity
    assert "before (input)" in run.stdout and "tfmot" not in run.stdout


def test_a_plan_measured_on_data_refuses_a_model_with_state(corpus_dir, tmp_path):
    """--clusters auto and a weight budget measure their options with the output-aware fit, which needs
    independent samples: called with calibration data on a model with state, they say so (exit 2), as the fit
    itself does."""
    from corpus_models import FRAME_FEATURES

    from toolchain.core.errors import ConfigError
    from toolchain.pipeline.target_sizer import sizer_for
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.output_aware import calibration_from_file
    from toolchain.rewrite.planner import PlanRequest, SizeGoal, rewrite_with_plan
    from toolchain.targets.profiles import load_profile

    corpus_build(corpus_dir, "streaming_kws")
    data = (corpus_dir / "streaming_kws.tflite").read_bytes()
    np.savez(tmp_path / "frames.npz", x=np.random.default_rng(0).normal(0, 1, (96, 1, 1, FRAME_FEATURES)).astype(
        np.float32))
    cal = calibration_from_file(data, tmp_path / "frames.npz", ReclusterConfig())
    sizer = sizer_for(load_profile(TARGETS[0]))
    for request in (PlanRequest(SizeGoal.AUTO), PlanRequest(SizeGoal.WEIGHT_BUDGET, weight_budget_bytes=10_000)):
        with pytest.raises(ConfigError, match="use --objective weights"):
            rewrite_with_plan(data, ReclusterConfig(), request, cal, sizer)


def test_stateful_model_takes_a_stream_of_frames_and_is_never_refused_for_it(corpus_dir, tmp_path):
    """A keyword model with state: --calibration frames become the check's stream (the weight-space fit uses no
    data), and what deploy says about it names only things deploy accepts."""
    from corpus_models import FRAME_FEATURES

    corpus_build(corpus_dir, "streaming_kws")
    model = str(corpus_dir / "streaming_kws.tflite")
    np.savez(tmp_path / "frames.npz", x=np.random.default_rng(0).normal(0, 1, (48, 1, 1, FRAME_FEATURES)).astype(
        np.float32))
    base = (model, "--target", TARGETS[0], "--build-dir", str(tmp_path / "b"), "--calibration",
            str(tmp_path / "frames.npz"))
    run = deploy(*base, "--json")
    assert run.rc == 0, run.stderr
    rep = json.loads((tmp_path / "b" / "streaming_kws" / "recluster" / "recluster.json").read_text())
    ver = rep["verification"]
    assert ver["stateful"] and ver["evidence"] == "held_out" and ver["samples"] == 48
    assert ver["inputs"] == "a stream of 48 samples of frames.npz (the weight-space fit does not use data)"
    assert rep["calibration"]["objective"] == "weights"
    refused = deploy(*base, "--objective", "outputs")
    assert refused.rc == 2 and "use --objective weights" in refused.stderr  # a flag deploy has
    # on random inputs, what would make the check informative is a stream of real frames, not DATA
    random_ver = json.loads((corpus_build(corpus_dir, "streaming_kws") / TARGETS[0] / "report" / "report.json")
                            .read_text())["fidelity"]
    assert "--data" not in random_ver["text"]
    if random_ver["status"] == "not_informative":
        assert "a stream of real feature frames" in random_ver["text"]
