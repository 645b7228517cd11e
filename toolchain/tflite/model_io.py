"""Read a .tflite into the flatbuffer object model (``ModelT``) and write it back.

``read_model`` checks the file before the object API touches it: flatbuffer
readers trust offsets, so a hostile file can make a naive parse loop over shared
tables (work and memory far beyond the file size). We walk the structure once
with a budget proportional to the file size and refuse anything that exceeds it.

``write_model`` packs with every buffer's data aligned to 16 bytes, as the
schema's ``force_align: 16`` asks (the Python builder ignores it).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ModelFormatError
from .validate import validate_model

FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16
MAX_FLATBUFFER_BYTES = 2**31 - 1


class _Budget:
    """Counts vector elements visited; a valid model never visits more than its size allows."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, n: int, what: str) -> None:
        if n < 0:
            raise ModelFormatError(f"malformed .tflite: negative length in {what}")
        self.left -= n
        if self.left < 0:
            raise ModelFormatError(f"malformed .tflite: {what} claims more elements than the file can hold")


def _check_vector(budget: _Budget, length: int, what: str) -> int:
    budget.spend(length, what)
    return length


def _check_string(budget: _Budget, value: bytes | None, what: str) -> None:
    # The reader copies a string once per reference: a shared string is charged each time.
    budget.spend(len(value) if value else 0, what)


def _prewalk_tensor_extras(budget: _Budget, tensor) -> None:
    """Sparsity and variant sub-types: vectors of tables the object API unpacks one by one."""
    sp = tensor.Sparsity()
    if sp is not None:
        _check_vector(budget, sp.TraversalOrderLength() + sp.BlockMapLength(), "tensor sparsity")
        _check_vector(budget, sp.DimMetadataLength(), "tensor sparsity dim_metadata")
    n = _check_vector(budget, tensor.VariantTensorsLength(), "tensor variant_tensors")
    for v in range(n):
        _check_vector(budget, tensor.VariantTensors(v).ShapeLength(), "variant tensor shape")


def _prewalk(buf: bytes) -> None:
    n = len(buf)
    (root,) = struct.unpack_from("<I", buf, 0)
    if root < 8 or root + 4 > n:
        raise ModelFormatError("malformed .tflite: root table offset points outside the file")
    # Every element of every vector takes at least one byte in a well-formed file.
    budget = _Budget(n + 64)
    m = schema.Model.GetRootAs(buf, 0)
    for i in range(_check_vector(budget, m.OperatorCodesLength(), "operator_codes")):
        oc = m.OperatorCodes(i)
        oc.BuiltinCode(), oc.DeprecatedBuiltinCode()
        _check_string(budget, oc.CustomCode(), "operator code")
    for i in range(_check_vector(budget, m.BuffersLength(), "buffers")):
        b = m.Buffers(i)
        _check_vector(budget, b.DataLength(), f"buffer {i}")
        off, size = b.Offset(), b.Size()
        if off > 1 and (off + size > n):
            raise ModelFormatError(f"malformed .tflite: buffer {i} points outside the file")
    for i in range(_check_vector(budget, m.SubgraphsLength(), "subgraphs")):
        sg = m.Subgraphs(i)
        _check_string(budget, sg.Name(), "subgraph name")
        _check_vector(budget, sg.InputsLength() + sg.OutputsLength(), f"subgraph {i} inputs/outputs")
        for t in range(_check_vector(budget, sg.TensorsLength(), f"subgraph {i} tensors")):
            tensor = sg.Tensors(t)
            _check_vector(budget, tensor.ShapeLength() + tensor.ShapeSignatureLength(), "tensor shape")
            _check_string(budget, tensor.Name(), "tensor name")
            _prewalk_tensor_extras(budget, tensor)
            q = tensor.Quantization()
            if q is not None:
                _check_vector(
                    budget,
                    q.ScaleLength() + q.ZeroPointLength() + q.MinLength() + q.MaxLength(),
                    "tensor quantization",
                )
        for o in range(_check_vector(budget, sg.OperatorsLength(), f"subgraph {i} operators")):
            op = sg.Operators(o)
            _check_vector(
                budget,
                op.InputsLength() + op.OutputsLength() + op.IntermediatesLength() + op.CustomOptionsLength()
                + op.MutatingVariableInputsLength(),
                "operator inputs/outputs",
            )
    _check_vector(budget, m.MetadataBufferLength(), "metadata_buffer")
    for i in range(_check_vector(budget, m.MetadataLength(), "metadata")):
        _check_string(budget, m.Metadata(i).Name(), "metadata name")
    for i in range(_check_vector(budget, m.SignatureDefsLength(), "signature_defs")):
        sd = m.SignatureDefs(i)
        _check_string(budget, sd.SignatureKey(), "signature key")
        for j in range(_check_vector(budget, sd.InputsLength(), "signature inputs")):
            _check_string(budget, sd.Inputs(j).Name(), "signature input name")
        for j in range(_check_vector(budget, sd.OutputsLength(), "signature outputs")):
            _check_string(budget, sd.Outputs(j).Name(), "signature output name")
    _check_string(budget, m.Description(), "description")
    for i in range(_check_vector(budget, m.ExternalBufferGroupsLength(), "external_buffer_groups")):
        _check_string(budget, m.ExternalBufferGroups(i).Name(), "external buffer group name")
    _check_vector(budget, m.ExternalBuffersLength(), "external_buffers")


def read_model(data: bytes) -> schema.ModelT:
    """Parse .tflite bytes into a ``ModelT``; any malformation raises ModelFormatError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("read_model expects bytes")
    buf = bytes(data)
    if len(buf) == 0:
        raise ModelFormatError("empty file: not a .tflite model")
    if len(buf) < 16:
        raise ModelFormatError(f"file too short ({len(buf)} bytes) to be a .tflite model")
    if buf[4:8] != FILE_IDENTIFIER:
        raise ModelFormatError(
            "not a .tflite model (missing 'TFL3' file identifier; a Keras model goes through "
            "'toolchain quantize' first)"
        )
    try:
        _prewalk(buf)
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
    except ModelFormatError:
        raise
    except RecursionError:
        raise ModelFormatError("malformed .tflite: structure nests too deeply") from None
    except MemoryError:
        raise ModelFormatError("malformed .tflite: declared sizes exceed available memory") from None
    except Exception:  # noqa: BLE001  the generated reader raises struct.error, IndexError... on corrupt offsets
        raise ModelFormatError(
            "malformed or truncated .tflite: its internal offsets point outside the file or at invalid data"
        ) from None
    _inline_external_buffers(model, buf)
    _check_references(model)
    validate_model(model)
    return model


def _inline_external_buffers(model: schema.ModelT, buf: bytes) -> None:
    # Models over 2 GB keep buffer data after the flatbuffer (offset/size); bring it inline.
    for i, b in enumerate(model.buffers or []):
        if b.offset > 1:
            end = b.offset + b.size
            if end > len(buf):
                raise ModelFormatError(f"malformed .tflite: buffer {i} data lies outside the file")
            b.data = np.frombuffer(buf, dtype=np.uint8, count=b.size, offset=b.offset).copy()
            b.offset = 0
            b.size = 0


def _check_references(model: schema.ModelT) -> None:
    """Indices between tables must be in range, or later stages would index blindly."""
    n_buffers = len(model.buffers or [])
    n_codes = len(model.operatorCodes or [])
    if not model.subgraphs:
        raise ModelFormatError("malformed .tflite: the model has no subgraph")
    for s, sg in enumerate(model.subgraphs):
        n_tensors = len(sg.tensors or [])
        for t, tensor in enumerate(sg.tensors or []):
            if not 0 <= tensor.buffer < max(n_buffers, 1):
                raise ModelFormatError(f"malformed .tflite: tensor {t} of subgraph {s} refers to missing buffer {tensor.buffer}")
        for o, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                raise ModelFormatError(f"malformed .tflite: operator {o} of subgraph {s} has unknown opcode index {op.opcodeIndex}")
            for idx in list(_as_list(op.inputs)) + list(_as_list(op.outputs)):
                if not -1 <= idx < n_tensors:
                    raise ModelFormatError(f"malformed .tflite: operator {o} of subgraph {s} refers to missing tensor {idx}")
        for idx in list(_as_list(sg.inputs)) + list(_as_list(sg.outputs)):
            if not 0 <= idx < n_tensors:
                raise ModelFormatError(f"malformed .tflite: subgraph {s} input/output refers to missing tensor {idx}")


def _as_list(v) -> list[int]:
    if v is None:
        return []
    return [int(x) for x in v]


@dataclass
class _AlignedBufferT:
    """Stands in for ``BufferT`` while packing, to honour ``force_align: 16``."""

    data: np.ndarray | None
    offset: int
    size: int

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data_off = None
        if self.data is not None:
            payload = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data_off = builder.EndVector()
        schema.BufferStart(builder)
        if data_off is not None:
            schema.BufferAddData(builder, data_off)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def write_model(model: schema.ModelT) -> bytes:
    """Serialise a ``ModelT``; the input object is left as it was."""
    original = model.buffers
    total = sum(int(np.asarray(b.data).size) for b in (original or []) if b.data is not None)
    if total > MAX_FLATBUFFER_BYTES:
        raise ModelFormatError("model weights exceed the 2 GiB flatbuffer limit; external buffers are not supported for writing")
    model.buffers = [
        _AlignedBufferT(None if b.data is None else np.asarray(b.data, dtype=np.uint8), b.offset, b.size)
        for b in (original or [])
    ]
    try:
        builder = flatbuffers.Builder(max(1024, total + (1 << 16)))
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())
    finally:
        model.buffers = original
