"""Reading a model meant for the NPU: int8, not already compiled by Vela, not TFLM-compressed."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import ModelFormatError
from ..core.fileio import read_input_bytes
from ..tflite.graph import BuiltinOp, require_int8_model
from ..tflite.model_io import read_model

VELA_CUSTOM_OP = "ethos-u"  # what Vela leaves in a compiled model
TFLM_DECODE_OP = "TFLM_DECODE"  # TFLM's LUT decompression: CPU-only models


# --------------------------------------------------------------------------- validation


def load_npu_model(model_path: Path):
    """Read and check a model before any compiler sees it; returns (bytes, ModelT)."""
    data = read_input_bytes(model_path, "model")
    try:
        model = read_model(data)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{model_path.name}: {exc}") from None
    require_int8_model(model, model_path.name)
    for oc in model.operatorCodes or []:
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) != BuiltinOp.CUSTOM:
            continue
        custom = oc.customCode.decode(errors="replace") if isinstance(oc.customCode, bytes) else str(oc.customCode)
        if custom == VELA_CUSTOM_OP:
            raise ModelFormatError(
                f"{model_path.name} is already compiled by Vela (it holds an '{VELA_CUSTOM_OP}' operator); "
                "compile the int8 model it came from"
            )
        if custom == TFLM_DECODE_OP:
            raise ModelFormatError(
                f"{model_path.name} is a TFLM LUT-compressed model (for CPU targets); Vela needs the reclustered "
                "int8 model instead"
            )
    return data, model
