"""``quantize_tflite``: a float .tflite to a full-int8 one with ai-edge-quantizer.

Prepare (tflite.float_prep: fold float16 and sparse constants, add a signature), calibrate on the
user's samples (or synthetic ones when asked for), quantize with the static int8 recipe, set the I/O
type, check the result as any int8 input is checked, and measure float vs int8 on the check samples.
The quantizer runs LiteRT with its default delegate (XNNPACK), which also runs MediaPipe's
Convolution2DTransposeBias; the check runs the toolchain's own LiteRT wrapper, which does not.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.errors import InputError, ModelFormatError, ToolError
from ..tflite import interpreter as rt
from ..tflite.agreement import compare_outputs
from ..tflite.float_prep import prepare_float_model
from ..tflite.graph import (
    NUMPY_DTYPES,
    BuiltinOp,
    TensorType,
    int4_tensor,
    is_quantized_int_model,
    op_code,
    op_name,
    require_int8_model,
    tensor_name,
)
from ..tflite.model_io import read_model, write_model
from .boundaries import to_float_io, to_int8_io
from .calibration import PtqCalibration, calibration_set_from_file, synthetic_calibration
from .config import QUANTIZER, IoType, PtqConfig
from .result import PtqReport

NO_CALIBRATION = ("quantizing a float model needs calibration data (--calibration FILE.npz: unlabelled "
                  "representative inputs, 'x' or one array per input name); random inputs give meaningless "
                  "activation ranges (--synthetic-calibration uses them anyway, and every report says so)")


def float_input_specs(model) -> tuple[rt.TensorSpec, ...]:
    """Subgraph 0's inputs as the calibration loader describes them (from the flatbuffer: LiteRT's wrapper
    cannot load a model with a custom operator it lacks, the quantizer's delegate may run it)."""
    sg = model.subgraphs[0]
    specs = []
    for i in (int(x) for x in (sg.inputs if sg.inputs is not None else [])):
        t = sg.tensors[i]
        dtype = NUMPY_DTYPES.get(int(t.type))
        if dtype is None or dtype.kind != "f":
            raise ModelFormatError(f"input '{tensor_name(t)}' is {TensorType(int(t.type)).name}: ai-edge-quantizer "
                                   "calibrates float inputs only")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        specs.append(rt.TensorSpec(tensor_name(t), shape, np.dtype(np.float32), 0.0, 0, i))
    return tuple(specs)


def require_float_model(model, name: str) -> None:
    t = int4_tensor(model)
    if t is not None:
        raise ModelFormatError(f"{name}: int4 weights are not supported (tensor '{t}'); give a float or int8 model")
    if is_quantized_int_model(model):
        raise InputError(f"{name} is already quantized (int8 tensors): deploy or recluster it directly, without "
                         "quantizing it again")


@contextlib.contextmanager
def _quiet():
    """The quantizer's progress bars (Python stderr) and LiteRT's delegate banner (fd 2) are not ours to print;
    its failures come back as exceptions."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        saved = None
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stderr(io.StringIO()):
        if saved is not None:
            os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.removesuffix(".").strip()


def _run_quantizer(prepared: bytes, calibration: PtqCalibration, name: str) -> bytes:
    from ai_edge_quantizer import quantizer, recipe

    model = read_model(prepared)
    sd = model.signatureDefs[0]
    key = sd.signatureKey.decode() if isinstance(sd.signatureKey, bytes) else sd.signatureKey
    by_index = {int(m.tensorIndex): (m.name.decode() if isinstance(m.name, bytes) else m.name) for m in sd.inputs}
    order = [by_index[int(i)] for i in model.subgraphs[sd.subgraphIndex].inputs]
    dataset = [dict(zip(order, row)) for row in calibration.rows]
    try:
        with _quiet():
            q = quantizer.Quantizer(bytearray(prepared), recipe.static_wi8_ai8())
            qsvs = q.calibrate({key: dataset}, num_threads=1)
            out = q.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False).quantized_model
    except Exception as exc:  # noqa: BLE001  the quantizer raises ValueError, RuntimeError, KeyError...: its reason
        reason = _first_line(exc)
        if "unresolved custom op" in reason.lower():
            reason = f"LiteRT cannot run its {reason.split(':', 1)[-1].strip()} (custom operator), so it cannot " \
                     "be calibrated"
        raise ToolError(f"{QUANTIZER} cannot quantize {name}: {reason}") from None
    if out is None:
        raise ToolError(f"{QUANTIZER} returned no model for {name}")
    return bytes(out)


def _float_operators(model) -> tuple[str, ...]:
    """Compute operators still reading float32 activations (what the quantizer did not support)."""
    counts: Counter[str] = Counter()
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            if op_code(model, op) in (BuiltinOp.QUANTIZE, BuiltinOp.DEQUANTIZE):
                continue
            ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if int(i) >= 0]
            if any(int(sg.tensors[i].type) == TensorType.FLOAT32 for i in ins):
                counts[op_name(model, op)] += 1
    return tuple(f"{k} x{v}" for k, v in sorted(counts.items()))


def _fidelity(prepared: bytes, int8: bytes, calibration: PtqCalibration):
    """Float vs int8 on the check samples, in the int8 outputs' steps; (None, reason) when LiteRT's wrapper
    cannot run one of them."""
    try:
        ref = rt.run_model(prepared, calibration.check_rows)
        specs_in = rt.input_specs(int8)
        rows = [[rt.quantize_input(x, s) for x, s in zip(row, specs_in)] for row in calibration.check_rows]
        new = rt.run_model(int8, rows)
        specs_out = rt.output_specs(int8)
    except ModelFormatError as exc:
        msg = str(exc)
        if "unresolved custom op" in msg.lower():
            op = msg.split("custom op:", 1)[-1].strip().split()[0].rstrip(".")
            return None, f"custom operator {op}: LiteRT cannot run it here"
        return None, msg
    new_real = [[rt.dequantize_output(y, s) for y, s in zip(row, specs_out)] for row in new]
    specs = tuple(rt.TensorSpec(s.name, s.shape, np.dtype(np.float32), s.scale, 0, s.index) for s in specs_out)
    return compare_outputs(ref, new_real, specs), None


def quantize_tflite(data: bytes, name: str, calibration_file: str | os.PathLike[str] | None, synthetic: bool,
                    config: PtqConfig = PtqConfig()) -> tuple[bytes, PtqReport]:
    """The full-int8 model and what was done; InputError without calibration, ToolError when the quantizer
    fails (its reason), ModelFormatError for a model it cannot take (int4, already int8)."""
    from importlib.metadata import version

    model = read_model(data)
    require_float_model(model, name)
    if calibration_file is None and not synthetic:
        raise InputError(f"{name} is a float model: {NO_CALIBRATION}")
    specs = float_input_specs(model)
    calibration = (calibration_set_from_file(calibration_file, specs, config) if calibration_file is not None
                   else synthetic_calibration(specs, config))
    prepared, prep = prepare_float_model(data)
    quantized = read_model(_run_quantizer(prepared, calibration, name))
    (to_float_io if config.io is IoType.FLOAT else to_int8_io)(quantized)
    out = write_model(quantized)
    checked = read_model(out)
    try:
        require_int8_model(checked, name)
    except ModelFormatError as exc:
        raise ToolError(f"{QUANTIZER} did not make an int8 model of {name}: {exc}") from None
    fidelity, not_run = _fidelity(prepared, out, calibration)
    report = PtqReport(version(QUANTIZER), prep, calibration, config.io, _float_operators(checked), fidelity, not_run,
                       len(data), len(out))
    return out, report


def quantize_tflite_file(model: Path, output: Path, calibration_file: Path | None, synthetic: bool,
                         config: PtqConfig = PtqConfig()) -> PtqReport:
    """``toolchain quantize MODEL.tflite``: read, quantize, write OUT atomically."""
    from ..core.fileio import atomic_write_bytes, read_input_bytes

    out, report = quantize_tflite(read_input_bytes(model, "model"), model.name, calibration_file, synthetic, config)
    atomic_write_bytes(output, out)
    return report
