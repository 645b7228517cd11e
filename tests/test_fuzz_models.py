"""Fuzzing: mutated models through the reader, inspect, palettise, compile and recluster (+ LiteRT).

The property: every mutated model ends in a typed ToolchainError or is accepted;
no other exception, no crash, no hang, bounded memory. The campaign runs in a
worker process (tests/fuzz_mutators.py) so a segfault is caught and pinned to its
case; the hypothesis test drives the same mutators in-process on the pure-Python
stages. benchmarks/fuzz_models.py runs the long campaign (>= 10,000 cases).
The regression tests below are the findings of that fuzzing, one per fix.
"""
from __future__ import annotations

import math
import struct
import time
from functools import partial

import fuzz_inputs as fi
import fuzz_mutators as fm
import numpy as np
import pytest
from fixtures_compile import *
from fixtures_robustness import *
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolchain.core import errors
from toolchain.core.errors import InputError, ModelFormatError, ToolchainError
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf  # the seeds are made with the TFLite converter (conftest)

SUITE_CASES = 1500
MAX_PEAK_RSS_BYTES = 1 << 30  # for ~20 KB inputs
MAX_CASE_TIME_S = 10.0  # a few ms typically, 1 s at most measured; a hang hits the 15 s case timeout


def _seeds(conv_bn_int8, depthwise_int8, dense_int8) -> dict[str, bytes]:
    return {"conv_bn_int8": conv_bn_int8.read_bytes(), "depthwise_int8": depthwise_int8.read_bytes(),
            "dense_int8": dense_int8.read_bytes()}


# --------------------------------------------------------------------------- the mutators themselves


def _site_values(data: bytes, lay, kind: str) -> list:
    return sorted(struct.unpack_from("<" + s.fmt, data, s.pos)[0] for s in lay.sites if s.kind == kind)


def _nonzero(values) -> list[int]:
    return sorted(int(v) for v in values if int(v) != 0)


def test_sites_are_where_the_generated_reader_reads(conv_bn_int8, depthwise_int8, dense_int8):
    """The walk's semantic sites hold exactly the values the schema reader returns (defaults are not stored)."""
    for data in _seeds(conv_bn_int8, depthwise_int8, dense_int8).values():
        lay = fm.layout(data)
        model = read_model(data)
        tensors = [t for sg in model.subgraphs for t in sg.tensors]
        ops = [op for sg in model.subgraphs for op in sg.operators]
        at = partial(_site_values, data, lay)

        assert lay.sites[0] == fm.Site("root", 0, "I")
        assert (lay.tensors, lay.buffers, lay.operators) == (len(tensors), len(model.buffers), len(ops))
        assert at("tensor_buffer") == _nonzero(t.buffer for t in tensors)
        assert at("tensor_type") == _nonzero(t.type for t in tensors)
        assert at("opcode_index") == _nonzero(op.opcodeIndex for op in ops)
        assert at("builtin_code") == _nonzero(oc.builtinCode for oc in model.operatorCodes)
        assert at("shape") == sorted(int(d) for t in tensors for d in t.shape)
        assert at("op_inputs") == sorted(int(i) for op in ops for i in op.inputs)
        scales = sorted(float(np.float32(s)) for t in tensors if t.quantization is not None and t.quantization.scale is not None
                        for s in t.quantization.scale)
        assert at("scale") == scales
        assert len(at("uoffset")) > len(tensors) and at("vtable_entry")


def test_mutators():
    seed = bytes(range(64))
    site = fm.Site("uoffset", 8, "I")
    assert struct.unpack_from("<I", fm.apply_plan(seed, [fm.SetSite(site, -1)]), 8)[0] == 2**32 - 1
    assert struct.unpack_from("<I", fm.apply_plan(seed, [fm.SetSite(site, 2**32 + 5)]), 8)[0] == 5
    assert struct.unpack_from("<i", fm.apply_plan(seed, [fm.SetSite(fm.Site("shape", 4, "i"), 2**31)]), 4)[0] == -(2**31)
    assert math.isnan(struct.unpack_from("<f", fm.apply_plan(seed, [fm.SetSite(fm.Site("scale", 0, "f"), math.nan)]), 0)[0])
    assert fm.apply_plan(seed, [fm.FlipBit(9)])[1] == seed[1] ^ 2
    assert fm.apply_plan(seed, [fm.Truncate(10)]) == seed[:10]
    assert fm.apply_plan(seed, [fm.Insert(3, b"xy")]) == seed[:3] + b"xy" + seed[3:]
    assert fm.apply_plan(seed, [fm.Delete(3, 2)]) == seed[:3] + seed[5:]
    assert fm.apply_plan(seed, [fm.CopyChunk(0, 10, 4)])[10:14] == seed[:4]
    # in-place mutations apply before length-changing ones, whatever the plan's order
    plan = [fm.Truncate(20), fm.Overwrite(30, b"\xff")]
    assert fm.apply_plan(seed, plan) == seed[:20]


def test_cases_are_reproducible_and_varied(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    lay = fm.layout(data)
    cases = [fm.mutated_case(data, lay, s) for s in range(200)]
    assert cases == [fm.mutated_case(data, lay, s) for s in range(200)]
    assert len(set(cases)) >= 190
    assert sum(c == data for c in cases) < 10  # a few plans rewrite a value with itself


# --------------------------------------------------------------------------- the campaign


@pytest.mark.slow
def test_fuzz_campaign_only_typed_errors(fuzz_seeds_dir):
    t0 = time.monotonic()
    results = fm.run_cases(fm.case_list(SUITE_CASES), fuzz_seeds_dir, case_timeout_s=15, deadline_s=240)
    summary = fm.summarise(results, time.monotonic() - t0)
    assert summary.findings == [], summary.findings[:3]
    assert summary.cases == SUITE_CASES + len(fm.SEED_NAMES), "the campaign ran out of time"
    for outcome in summary.outcomes:
        assert outcome == "ok" or issubclass(getattr(errors, outcome), ToolchainError), outcome
    controls = [r for r in results if r.case.case_seed < 0]
    assert [r.outcome for r in controls] == ["ok"] * len(fm.SEED_NAMES), controls
    # the mutations reach every stage, and some models survive all of them, LiteRT included
    assert summary.outcomes.get("ok", 0) >= 0.05 * SUITE_CASES
    assert {"read", "inspect", "recluster", "verify"} <= set(summary.by_stage)
    assert summary.peak_rss_bytes < MAX_PEAK_RSS_BYTES
    assert summary.slowest["time_s"] < MAX_CASE_TIME_S, summary.slowest


def test_runner_reports_crashes_and_hangs(fuzz_seeds_dir, monkeypatch):
    """The harness itself: a worker that segfaults or stalls is a finding pinned to its case."""
    monkeypatch.setenv("FUZZ_WORKER_SELF_TEST", "1")
    results = fm.run_cases([fm.Case("dense_int8", -1), fm.Case("dense_int8", -2), fm.Case("dense_int8", -3),
                            fm.Case("dense_int8", -1)], fuzz_seeds_dir, case_timeout_s=5)
    assert [r.outcome for r in results] == ["ok", "crash:SIGSEGV", "hang", "ok"]
    assert [r.finding for r in results] == [False, True, True, False]


INPUT_CASES = 160


def test_input_fuzzing_names_paths_profiles_configs(dense_int8):
    """Not model bytes: hostile names through every sink, paths through the real CLI, values in profiles and
    configs (tests/fuzz_inputs.py). Every case is accepted or ends in a typed error; none is a finding."""
    t0 = time.monotonic()
    results = fi.run_input_cases(INPUT_CASES, fi.input_seeds(dense_int8.read_bytes()))
    summary = fi.summarise_inputs(results, time.monotonic() - t0)
    assert summary["findings"] == [], summary["findings"][:3]
    assert summary["by_family"] == {f: INPUT_CASES // len(fi.FAMILIES) for f in fi.FAMILIES}
    # each family reaches both ends: accepted inputs and refused ones
    by_family = {f: {r.outcome for r in results if r.case.family == f} for f in fi.FAMILIES}
    assert all("ok" in o for o in by_family.values()), by_family
    assert "refused (exit 2)" in by_family["paths"] and "ConfigError" in by_family["profiles"] & by_family["configs"]


# --------------------------------------------------------------------------- hypothesis, in-process



def _mutation(lay: fm.ModelLayout):
    n = lay.size
    site = st.sampled_from(lay.sites).flatmap(
        lambda s: st.builds(fm.SetSite, st.just(s), st.one_of(st.sampled_from(fm.interesting_values(s, lay)),
                                                              st.integers(-(2**63), 2**64 - 1) if s.fmt != "f"
                                                              else st.floats(allow_nan=True, allow_infinity=True)))
    )
    return st.one_of(
        site,
        st.builds(fm.FlipBit, st.integers(0, 8 * n - 1)),
        st.builds(fm.Overwrite, st.integers(0, n - 1), st.binary(min_size=1, max_size=8)),
        st.builds(fm.Truncate, st.integers(0, n)),
        st.builds(fm.Insert, st.integers(0, n), st.binary(min_size=1, max_size=16)),
        st.builds(fm.Delete, st.integers(0, n - 1), st.integers(1, 16)),
    )


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_reader_inspect_palettise(conv_bn_int8, depthwise_int8, dense_int8, data):
    """Pure-Python stages in-process: hypothesis shrinks any failure to a minimal mutation plan."""
    from toolchain.palettes.table import PalettiseConfig, build_palette_set
    from toolchain.rewrite.inspect import inspect_model

    seeds = _seeds(conv_bn_int8, depthwise_int8, dense_int8)
    name = data.draw(st.sampled_from(sorted(seeds)))
    seed = seeds[name]
    lay = fm.layout(seed)
    plan = data.draw(st.lists(_mutation(lay), min_size=1, max_size=4))
    model = fm.apply_plan(seed, plan)
    with fi.time_limit(MAX_CASE_TIME_S):
        try:
            read_model(model)
            inspect_model(model)
            build_palette_set(model, PalettiseConfig(tflm=False))
        except ToolchainError:
            pass


# --------------------------------------------------------------------------- regressions: one per finding


@pytest.mark.parametrize("via, copies, inner", [("sparsity", 3000, 3000), ("name", 20000, 20000)])
def test_shared_table_amplification_refused_quickly(via, copies, inner):
    """A 16-100 KB file whose tensors share one table: the reader used to take minutes / 400+ MB."""
    data = fm.shared_table_amplifier(copies, inner, via)
    assert len(data) < 200_000
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match="claims more elements than the file can hold"):
        read_model(data)
    assert time.perf_counter() - t0 < 1.0
    read_model(fm.shared_table_amplifier(1, 100, via))  # sharing itself is legal


@pytest.mark.parametrize(
    "edit, seed, message",
    [
        # recluster's refit: ValueError "cannot convert float NaN to integer"
        (lambda b: fm.weight_scale(b, math.nan), "dense_int8", "quantization scale nan"),
        (lambda b: fm.weight_scale(b, math.inf), "dense_int8", "quantization scale inf"),
        (lambda b: fm.weight_scale(b, -0.5), "dense_int8", "quantization scale -0.5"),
        # write_model: OverflowError "float too large to pack with f format" after the scale refit
        (lambda b: fm.weight_scale(b, 3e38), "dense_int8", "quantization scale 3e+38"),
        # LiteRT: SIGSEGV
        (fm.op_writes_model_input, "dense_int8", "writes tensor 0, an input of the subgraph"),
        (fm.op_writes_model_input, "depthwise_int8", "an input of the subgraph"),
        (fm.reshape_without_shape, "depthwise_int8", "RESHAPE) has no tensor for its required input 1"),
        # LiteRT: RuntimeError "Input tensor 3 lacks data" at invoke
        (fm.weights_stripped, "dense_int8", "which holds no data and which no operator writes"),
        # LiteRT's Python binding: UnicodeDecodeError reading tensor names
        (lambda b: fm.tensor_name_bytes(b, b"in\xff\xfeput"), "dense_int8", "name that is not UTF-8"),
        # huge and negative dimensions
        (lambda b: fm.input_dimension(b, 2**31 - 1), "dense_int8", "over the 2 GiB limit"),
        (lambda b: fm.input_dimension(b, -2), "dense_int8", "negative dimension"),
    ],
)
def test_validation_refuses_what_broke_a_stage_or_litert(conv_bn_int8, depthwise_int8, dense_int8, edit, seed, message):
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model

    bad = edit(_seeds(conv_bn_int8, depthwise_int8, dense_int8)[seed])
    with pytest.raises(ModelFormatError, match="malformed .tflite") as exc:
        read_model(bad)
    assert message in str(exc.value)
    with pytest.raises(ModelFormatError):
        recluster_model(bad, ReclusterConfig())


def test_validation_refuses_broken_operators(dense_int8):
    """recluster's bias check indexed op.inputs of a FULLY_CONNECTED without inputs (TypeError)."""
    def no_inputs(m):
        m.subgraphs[0].operators[0].inputs = None

    def missing_output(m):
        m.subgraphs[0].operators[0].outputs = [-1]

    def zero_point(m):
        t = m.subgraphs[0].tensors[int(m.subgraphs[0].inputs[0])]
        t.quantization.zeroPoint = [1 << 40]

    def two_writers(m):
        ops = m.subgraphs[0].operators
        ops[1].outputs = list(ops[0].outputs)

    seed = dense_int8.read_bytes()
    for edit, message in [(no_inputs, "has no weights operand"), (missing_output, "has a missing output"),
                          (zero_point, "zero point outside the range of int8"),
                          (two_writers, "already written by operator 0")]:
        with pytest.raises(ModelFormatError, match=message):
            read_model(fm.edited_model(seed, edit))


def test_litert_failures_are_typed(dense_int8):
    """LiteRT's ValueError/RuntimeError (unresolved ops, bad operand types, wrong input sizes) become ModelFormatError."""
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.rewrite.verify import VerifyOptions, verify
    from toolchain.tflite import interpreter as rt

    seed = dense_int8.read_bytes()
    bad = fm.custom_op(seed)
    out, _ = recluster_model(bad, ReclusterConfig())
    with pytest.raises(ModelFormatError, match="LiteRT cannot load the model: .*unresolved custom op"):
        rt.input_specs(bad)
    # verification does not fail on a custom operator: it says it could not run and names the operator
    assert verify(bad, out, None, VerifyOptions(samples=2)).not_run == "custom operator MyUnknownOp"
    # int16 weights: recluster refuses them itself now; LiteRT's own refusal is still typed
    int16 = fm.weights_as_int16(seed)
    with pytest.raises(ModelFormatError, match="only int8 weights"):
        recluster_model(int16, ReclusterConfig())
    with pytest.raises(ModelFormatError, match="LiteRT cannot load the model: .*failed to prepare"):
        rt.input_specs(int16)
    with pytest.raises(ModelFormatError, match="LiteRT cannot run the model: .*mismatch"):
        rt.run_model(seed, [[np.zeros(3, np.int8)]])


def test_verification_memory_is_bounded(dense_int8):
    """A 20 KB model declaring a 1M x 64 input made verification take ~1 GB of memory; now refused up front."""
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.rewrite.verify import VerifyOptions, verify
    from toolchain.tflite import interpreter as rt
    from toolchain.tflite.inputs import random_inputs

    bad = fm.input_dimension(dense_int8.read_bytes(), 2**20 + 1)
    out, _ = recluster_model(bad, ReclusterConfig())
    with pytest.raises(InputError, match="MiB limit"):
        verify(bad, out, None, VerifyOptions(samples=2))
    specs = (rt.TensorSpec("x", (4096, 1024), np.dtype(np.int8), 1.0, 0),)
    with pytest.raises(InputError, match="random inputs"):
        random_inputs(specs, 100, 0)
    assert len(random_inputs(specs, 2, 0)) == 2


# --------------------------------------------------------------------------- no false alarms


def test_validation_accepts_every_kind_of_real_model(
    conv_bn_int8, depthwise_int8, dense_int8, dense_float, hybrid_int8, gather_int8, int16x8_model, tmp_path
):
    """Converter int8/16x8/float/dynamic-range models, recluster, Vela and TFLM outputs all pass the validation."""
    from toolchain.palettes.palettise import palettise_file
    from toolchain.palettes.table import PalettiseConfig
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.targets.compile import compile_model
    from toolchain.targets.profiles import load_profile

    for path in (conv_bn_int8, depthwise_int8, dense_int8, dense_float, hybrid_int8, gather_int8, int16x8_model):
        read_model(path.read_bytes())
    rewritten, _ = recluster_model(conv_bn_int8.read_bytes(), ReclusterConfig(clusters=8))
    read_model(rewritten)
    model = tmp_path / "rec.tflite"
    model.write_bytes(rewritten)
    result = compile_model(model, load_profile("ethos-u55-128"), tmp_path / "compile")
    read_model(result.vela_model.read_bytes())
    outcome = palettise_file(model, tmp_path / "palettes", PalettiseConfig())
    tflm = tmp_path / "palettes" / "model_tflm.tflite"
    assert tflm in outcome.files
    read_model(tflm.read_bytes())
