"""Mutators for fuzzing .tflite readers, and a crash-proof runner that feeds them to the toolchain.

Two kinds of mutation, both deterministic functions of explicit parameters (so a
seeded RNG and hypothesis can drive the same code):

* structural: a walk of the seed model's flatbuffer lists every *site* (the root
  offset, each table's vtable offset and vtable entries, every uoffset field, vector
  and string lengths, and the semantic fields: tensor shapes, types, buffer indices,
  operator opcode indices and tensor indices, quantization scales, zero points and
  axes, opcodes). A mutation overwrites one site in place with a chosen value:
  out-of-file offsets, lengths of 2^31, 2^31-1 dimensions, wrong types, wrong
  indices, NaN scales.
* raw: bit flips, byte overwrites, truncation, insertion, deletion, copying a chunk.

The runner (``run_cases``) sends cases to a worker process that streams one result
line per case, so a crash, a hang or a memory blow-up is pinned to the case that
caused it and the remaining cases go to a fresh worker. A case's *outcome* is the
name of the typed error it ended in (``ok`` when every stage accepted it); anything
else is a finding.
"""
from __future__ import annotations

import json
import math
import os
import random
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- the flatbuffer walk

# Field slots (vtable offsets) of the tflite schema, as in ai_edge_litert.schema_py_generated:
# slot -> (field name, kind, element format or child table). test_fuzz_models checks them
# against the generated reader.
_VEC_TABLE, _VEC_SCALAR, _TABLE, _STRING, _SCALAR, _UNION = "vt", "vs", "t", "s", "x", "u"
SCHEMA: dict[str, dict[int, tuple[str, str, str]]] = {
    "Model": {
        4: ("version", _SCALAR, "I"),
        6: ("operator_codes", _VEC_TABLE, "OperatorCode"),
        8: ("subgraphs", _VEC_TABLE, "SubGraph"),
        10: ("description", _STRING, ""),
        12: ("buffers", _VEC_TABLE, "Buffer"),
        14: ("metadata_buffer", _VEC_SCALAR, "i"),
        16: ("metadata", _VEC_TABLE, "Metadata"),
        18: ("signature_defs", _VEC_TABLE, "SignatureDef"),
    },
    "SubGraph": {
        4: ("tensors", _VEC_TABLE, "Tensor"),
        6: ("subgraph_inputs", _VEC_SCALAR, "i"),
        8: ("subgraph_outputs", _VEC_SCALAR, "i"),
        10: ("operators", _VEC_TABLE, "Operator"),
        12: ("subgraph_name", _STRING, ""),
    },
    "Tensor": {
        4: ("shape", _VEC_SCALAR, "i"),
        6: ("tensor_type", _SCALAR, "b"),
        8: ("tensor_buffer", _SCALAR, "I"),
        10: ("tensor_name", _STRING, ""),
        12: ("quantization", _TABLE, "QuantizationParameters"),
        14: ("is_variable", _SCALAR, "B"),
        18: ("shape_signature", _VEC_SCALAR, "i"),
    },
    "Operator": {
        4: ("opcode_index", _SCALAR, "I"),
        6: ("op_inputs", _VEC_SCALAR, "i"),
        8: ("op_outputs", _VEC_SCALAR, "i"),
        10: ("builtin_options_type", _SCALAR, "B"),
        12: ("builtin_options", _UNION, "Options"),
        14: ("custom_options", _VEC_SCALAR, "B"),
        20: ("intermediates", _VEC_SCALAR, "i"),
    },
    "Buffer": {
        4: ("buffer_data", _VEC_SCALAR, "B"),
        6: ("buffer_offset", _SCALAR, "Q"),
        8: ("buffer_size", _SCALAR, "Q"),
    },
    "OperatorCode": {
        4: ("deprecated_builtin_code", _SCALAR, "b"),
        6: ("custom_code", _STRING, ""),
        8: ("opcode_version", _SCALAR, "i"),
        10: ("builtin_code", _SCALAR, "i"),
    },
    "QuantizationParameters": {
        4: ("quant_min", _VEC_SCALAR, "f"),
        6: ("quant_max", _VEC_SCALAR, "f"),
        8: ("scale", _VEC_SCALAR, "f"),
        10: ("zero_point", _VEC_SCALAR, "q"),
        16: ("quantized_dimension", _SCALAR, "i"),
    },
    "Metadata": {4: ("metadata_name", _STRING, ""), 6: ("metadata_buffer_index", _SCALAR, "I")},
    "SignatureDef": {
        4: ("signature_inputs", _VEC_TABLE, "TensorMap"),
        6: ("signature_outputs", _VEC_TABLE, "TensorMap"),
        8: ("signature_key", _STRING, ""),
        12: ("signature_subgraph_index", _SCALAR, "I"),
    },
    "TensorMap": {4: ("tensor_map_name", _STRING, ""), 6: ("tensor_map_index", _SCALAR, "I")},
    "Options": {},  # a builtin-options union member: only its vtable is listed
}

# Vectors whose elements are listed one by one (weight data is mutated by the raw mutators).
_ELEMENT_SITES = {"shape", "shape_signature", "subgraph_inputs", "subgraph_outputs", "op_inputs", "op_outputs",
                  "scale", "zero_point", "intermediates", "metadata_buffer"}


@dataclass(frozen=True)
class Site:
    """A place in the file that a structural mutation may overwrite."""

    kind: str  # "root", "vtable_offset", "vtable_entry", "vtable_size", "table_size", "uoffset",
    #            "vector_length", "string_length", or a schema field name (e.g. "shape", "tensor_type")
    pos: int
    fmt: str  # struct format character, little-endian


@dataclass(frozen=True)
class ModelLayout:
    """The sites of one seed model plus the counts its semantic values are drawn from."""

    size: int
    sites: tuple[Site, ...]
    tensors: int
    buffers: int
    operator_codes: int
    operators: int


def _u32(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


class _Walker:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.sites: list[Site] = []
        self.seen_tables: set[int] = set()
        self.seen_vtables: set[int] = set()
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, pos: int, fmt: str) -> None:
        if 0 <= pos and pos + struct.calcsize("<" + fmt) <= len(self.buf):
            self.sites.append(Site(kind, pos, fmt))

    def table(self, pos: int, name: str) -> None:
        if pos in self.seen_tables:
            return
        self.seen_tables.add(pos)
        buf = self.buf
        self.add("vtable_offset", pos, "i")
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        vt_size = struct.unpack_from("<H", buf, vt)[0]
        if vt not in self.seen_vtables:
            self.seen_vtables.add(vt)
            self.add("vtable_size", vt, "H")
            self.add("table_size", vt + 2, "H")
            for slot in range(4, vt_size, 2):
                self.add("vtable_entry", vt + slot, "H")
        for slot, (fname, kind, arg) in SCHEMA[name].items():
            if slot >= vt_size:
                continue
            off = struct.unpack_from("<H", buf, vt + slot)[0]
            if off == 0:
                continue
            fpos = pos + off
            if kind == _SCALAR:
                self.add(fname, fpos, arg)
                continue
            self.add("uoffset", fpos, "I")
            target = fpos + _u32(buf, fpos)
            if kind in (_TABLE, _UNION):
                self.table(target, arg)
            elif kind == _STRING:
                self.add("string_length", target, "I")
            else:
                n = _u32(buf, target)
                self.add("vector_length", target, "I")
                self.counts[fname] += n
                if kind == _VEC_TABLE:
                    for i in range(n):
                        epos = target + 4 + 4 * i
                        self.add("uoffset", epos, "I")
                        self.table(epos + _u32(buf, epos), arg)
                elif fname in _ELEMENT_SITES:
                    width = struct.calcsize("<" + arg)
                    for i in range(n):
                        self.add(fname, target + 4 + width * i, arg)


def layout(buf: bytes) -> ModelLayout:
    """Walk a well-formed model (a seed) and list its mutation sites."""
    w = _Walker(buf)
    w.add("root", 0, "I")
    w.table(_u32(buf, 0), "Model")
    return ModelLayout(
        size=len(buf),
        sites=tuple(w.sites),
        tensors=w.counts["tensors"],
        buffers=w.counts["buffers"],
        operator_codes=w.counts["operator_codes"],
        operators=w.counts["operators"],
    )


# --------------------------------------------------------------------------- mutations

_FLOAT32_MAX = 3.4028234663852886e38
_LIMITS = {"b": (-(2**7), 2**7 - 1), "B": (0, 2**8 - 1), "h": (-(2**15), 2**15 - 1), "H": (0, 2**16 - 1),
           "i": (-(2**31), 2**31 - 1), "I": (0, 2**32 - 1), "q": (-(2**63), 2**63 - 1), "Q": (0, 2**64 - 1)}


@dataclass(frozen=True)
class SetSite:
    """Overwrite one site with ``value`` (wrapped to the site's width)."""

    site: Site
    value: int | float

    def apply(self, buf: bytearray) -> bytearray:
        s = self.site
        if s.pos + struct.calcsize("<" + s.fmt) > len(buf):
            return buf
        if s.fmt == "f":
            v = float(self.value)
            if math.isfinite(v) and abs(v) > _FLOAT32_MAX:  # rounds to infinity, as a float32 cast does
                v = math.copysign(math.inf, v)
            struct.pack_into("<f", buf, s.pos, v)
        else:
            lo, hi = _LIMITS[s.fmt]
            v = int(self.value) - lo
            struct.pack_into("<" + s.fmt, buf, s.pos, v % (hi - lo + 1) + lo)
        return buf


@dataclass(frozen=True)
class FlipBit:
    bit: int

    def apply(self, buf: bytearray) -> bytearray:
        if buf:
            i = self.bit % (8 * len(buf))
            buf[i // 8] ^= 1 << (i % 8)
        return buf


@dataclass(frozen=True)
class Overwrite:
    pos: int
    data: bytes

    def apply(self, buf: bytearray) -> bytearray:
        if buf:
            p = self.pos % len(buf)
            buf[p : p + len(self.data)] = self.data[: len(buf) - p]
        return buf


@dataclass(frozen=True)
class Truncate:
    length: int

    def apply(self, buf: bytearray) -> bytearray:
        return buf[: max(0, min(self.length, len(buf)))]


@dataclass(frozen=True)
class Insert:
    pos: int
    data: bytes

    def apply(self, buf: bytearray) -> bytearray:
        p = self.pos % (len(buf) + 1)
        return buf[:p] + bytearray(self.data) + buf[p:]


@dataclass(frozen=True)
class Delete:
    pos: int
    count: int

    def apply(self, buf: bytearray) -> bytearray:
        if not buf:
            return buf
        p = self.pos % len(buf)
        return buf[:p] + buf[p + self.count :]


@dataclass(frozen=True)
class CopyChunk:
    """Copy ``count`` bytes from ``src`` over ``dst``: plausible-looking structure in the wrong place."""

    src: int
    dst: int
    count: int

    def apply(self, buf: bytearray) -> bytearray:
        if not buf:
            return buf
        s, d = self.src % len(buf), self.dst % len(buf)
        chunk = buf[s : s + self.count]
        buf[d : d + len(chunk)] = chunk[: len(buf) - d]
        return buf


Mutation = SetSite | FlipBit | Overwrite | Truncate | Insert | Delete | CopyChunk
# Length-changing mutations shift every later offset: apply_plan runs them after the in-place ones.
_RESIZING = (Truncate, Insert, Delete)


def apply_plan(seed: bytes, plan: Sequence[Mutation]) -> bytes:
    buf = bytearray(seed)
    for m in sorted(plan, key=lambda m: isinstance(m, _RESIZING)):
        buf = m.apply(buf)
    return bytes(buf)


def interesting_values(site: Site, lay: ModelLayout) -> list[int | float]:
    """Values likely to break a reader at this site (the seeded mutator also draws random ones)."""
    n = lay.size
    common = [0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1]
    k = site.kind
    if k in ("root", "uoffset"):
        return common + [4, n, n - site.pos, n - site.pos - 1, n - site.pos + 4, site.pos, 2**30]
    if k in ("vector_length", "string_length"):
        return common + [2, 2**16, 2**30, n, n // 4, 2**31 - 2]
    if k in ("vtable_offset",):
        return common + [4, -4, site.pos, site.pos + 1, -n, n]
    if k in ("vtable_entry", "vtable_size", "table_size"):
        return [0, 1, 2, 3, 4, 0xFFFF, 0x7FFF, 0x8000, 255]
    if k in ("shape", "shape_signature"):
        return [0, -1, -2, 1, 2**31 - 1, -(2**31), 2**16, 2**20 + 1, 3]
    if k == "tensor_type":
        return list(range(-1, 19)) + [127, -128]
    if k in ("tensor_buffer", "metadata_buffer_index", "metadata_buffer"):
        return [0, 1, lay.buffers - 1, lay.buffers, lay.buffers + 1, 2**31 - 1, 2**32 - 1]
    if k == "opcode_index":
        return [0, lay.operator_codes - 1, lay.operator_codes, 2**31, 2**32 - 1]
    if k in ("op_inputs", "op_outputs", "subgraph_inputs", "subgraph_outputs", "intermediates", "tensor_map_index"):
        return [-1, -2, 0, lay.tensors - 1, lay.tensors, 2**31 - 1, -(2**31)]
    if k in ("builtin_code", "deprecated_builtin_code"):
        return [0, 3, 4, 9, 22, 32, 127, 128, 150, 209, 210, 255, 1000, -1, -(2**31)]
    if k == "builtin_options_type":
        return [0, 1, 2, 8, 100, 127, 128, 255]
    if k == "scale":
        return [0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e38, 3.4e38, 1.0]
    if k == "zero_point":
        return [0, 1, -128, 127, 128, 2**40, -(2**63), 2**63 - 1]
    if k == "quantized_dimension":
        return [-1, 0, 1, 2, 3, 4, 2**31 - 1]
    if k in ("buffer_offset", "buffer_size"):
        return [0, 1, 2, n, n + 1, 2**32, 2**63, 2**64 - 1]
    return common


def random_value(site: Site, lay: ModelLayout, rng: random.Random) -> int | float:
    if rng.random() < 0.75:
        return rng.choice(interesting_values(site, lay))
    if site.fmt == "f":
        return rng.choice([rng.uniform(-1e3, 1e3), rng.uniform(-1e-3, 1e-3)])
    lo, hi = _LIMITS[site.fmt]
    return rng.randint(lo, hi)


_SEMANTIC_KINDS = ("shape", "tensor_type", "tensor_buffer", "opcode_index", "op_inputs", "op_outputs",
                   "builtin_code", "scale", "zero_point", "quantized_dimension", "subgraph_inputs", "subgraph_outputs")


def random_plan(seed: bytes, lay: ModelLayout, rng: random.Random) -> tuple[Mutation, ...]:
    """One to four mutations: structural, semantic, raw or a mix."""
    n = len(seed)
    style = rng.random()
    plan: list[Mutation] = []
    count = rng.choice((1, 1, 1, 2, 2, 3, 4))
    for _ in range(count):
        r = rng.random() if style >= 0.6 else style
        if r < 0.3:  # any site: offsets, lengths, vtables
            site = rng.choice(lay.sites)
            plan.append(SetSite(site, random_value(site, lay, rng)))
        elif r < 0.6:  # semantic fields only: valid structure, broken meaning
            kind = rng.choice(_SEMANTIC_KINDS)
            sites = [s for s in lay.sites if s.kind == kind] or list(lay.sites)
            site = rng.choice(sites)
            plan.append(SetSite(site, random_value(site, lay, rng)))
        else:
            raw = rng.random()
            if raw < 0.35:
                plan.append(FlipBit(rng.randrange(8 * n)))
            elif raw < 0.55:
                plan.append(Overwrite(rng.randrange(n), bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))))
            elif raw < 0.7:
                plan.append(Truncate(rng.choice((rng.randrange(n), rng.randrange(64), n - rng.randint(1, 16)))))
            elif raw < 0.8:
                plan.append(Insert(rng.randrange(n + 1), bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))))
            elif raw < 0.9:
                plan.append(Delete(rng.randrange(n), rng.randint(1, 16)))
            else:
                plan.append(CopyChunk(rng.randrange(n), rng.randrange(n), rng.randint(4, 64)))
    return tuple(plan)


def mutated_case(seed: bytes, lay: ModelLayout, case_seed: int) -> bytes:
    """The mutated model for ``case_seed``: the same bytes every time."""
    return apply_plan(seed, random_plan(seed, lay, random.Random(case_seed)))


# --------------------------------------------------------------------------- hostile models built in code


def shared_table_amplifier(copies: int, inner: int, via: str = "sparsity") -> bytes:
    """A small well-formed file whose ``copies`` tensors all share one table of size ``inner``.

    A reader that unpacks every reference does copies x inner work: 4,000 x 4,000 =
    16 million objects from a 40 KB file. ``via`` picks what is shared: the tensor's
    sparsity parameters (a vector of ``inner`` dimension tables) or its name
    (``inner`` bytes, copied once per tensor).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    b = flatbuffers.Builder(1024)
    sparsity = name = None
    if via == "sparsity":
        schema.DimensionMetadataStart(b)
        schema.DimensionMetadataAddDenseSize(b, 1)
        dim = schema.DimensionMetadataEnd(b)
        schema.SparsityParametersStartDimMetadataVector(b, inner)
        for _ in range(inner):
            b.PrependUOffsetTRelative(dim)
        dims = b.EndVector()
        schema.SparsityParametersStart(b)
        schema.SparsityParametersAddDimMetadata(b, dims)
        sparsity = schema.SparsityParametersEnd(b)
    elif via == "name":
        name = b.CreateString("n" * inner)
    else:
        raise ValueError(via)
    schema.TensorStartShapeVector(b, 1)
    b.PrependInt32(1)
    shape = b.EndVector()
    schema.TensorStart(b)
    schema.TensorAddShape(b, shape)
    schema.TensorAddType(b, schema.TensorType.INT8)
    if sparsity is not None:
        schema.TensorAddSparsity(b, sparsity)
    if name is not None:
        schema.TensorAddName(b, name)
    tensor = schema.TensorEnd(b)
    schema.SubGraphStartTensorsVector(b, copies)
    for _ in range(copies):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    schema.SubGraphStart(b)
    schema.SubGraphAddTensors(b, tensors)
    sg = schema.SubGraphEnd(b)
    schema.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    schema.BufferStart(b)
    buf0 = schema.BufferEnd(b)
    schema.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(buf0)
    bufs = b.EndVector()
    schema.ModelStart(b)
    schema.ModelAddVersion(b, 3)
    schema.ModelAddSubgraphs(b, sgs)
    schema.ModelAddBuffers(b, bufs)
    b.Finish(schema.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def edited_model(seed: bytes, edit) -> bytes:
    """``seed`` read into a ModelT, changed in place by ``edit(model)``, written back (no validation)."""
    from toolchain.tflite.model_io import read_model, write_model

    model = read_model(seed)
    edit(model)
    return write_model(model)


def _first_op(model, name: str):
    from toolchain.tflite.graph import op_name

    return next(op for op in model.subgraphs[0].operators if op_name(model, op) == name)


def _weight_tensor(model, name: str = "FULLY_CONNECTED"):
    op = _first_op(model, name)
    return model.subgraphs[0].tensors[int(op.inputs[1])]


def op_writes_model_input(seed: bytes) -> bytes:
    """The last operator writes into the subgraph's input (LiteRT 2.3.0 crashes with SIGSEGV on it)."""
    def edit(m):
        m.subgraphs[0].operators[-1].outputs = [int(m.subgraphs[0].inputs[0])]
    return edited_model(seed, edit)


def reshape_without_shape(seed: bytes) -> bytes:
    """A RESHAPE whose shape operand is -1 and that has no options (LiteRT crashes with SIGSEGV)."""
    def edit(m):
        op = _first_op(m, "RESHAPE")
        op.inputs = [int(op.inputs[0]), -1]
        op.builtinOptionsType, op.builtinOptions = 0, None
    return edited_model(seed, edit)


def weight_scale(seed: bytes, value: float) -> bytes:
    """The first FULLY_CONNECTED weight tensor's first scale set to ``value`` (NaN, inf, 1e38...)."""
    def edit(m):
        q = _weight_tensor(m).quantization
        q.scale = [value] + [float(x) for x in q.scale[1:]]
    return edited_model(seed, edit)


def weights_stripped(seed: bytes) -> bytes:
    """Every constant int8 weight buffer emptied, as a weight-stripping tool leaves a model."""
    from toolchain.tflite.graph import find_weight_tensors

    def edit(m):
        for w in find_weight_tensors(m):
            m.buffers[m.subgraphs[w.subgraph].tensors[w.tensor_index].buffer].data = None
    return edited_model(seed, edit)


def weights_as_int16(seed: bytes) -> bytes:
    """Every int8 weight tensor stored as int16 with the same values (a consistent int16-weight model)."""
    import numpy as np

    from toolchain.tflite.graph import TensorType, find_weight_tensors

    def edit(m):
        for w in find_weight_tensors(m):
            t = m.subgraphs[w.subgraph].tensors[w.tensor_index]
            values = np.asarray(m.buffers[t.buffer].data, np.uint8).view(np.int8).astype("<i2")
            m.buffers[t.buffer].data = values.view(np.uint8)
            t.type = TensorType.INT16
    return edited_model(seed, edit)


def weights_as_int4(seed: bytes) -> bytes:
    """Every int8 weight tensor stored as INT4 (two values per byte, as int4 models pack them); values clipped."""
    import numpy as np

    from toolchain.tflite.graph import TensorType, find_weight_tensors

    def edit(m):
        for w in find_weight_tensors(m):
            t = m.subgraphs[w.subgraph].tensors[w.tensor_index]
            v = np.clip(np.asarray(m.buffers[t.buffer].data, np.uint8).view(np.int8), -8, 7).astype(np.uint8) & 0xF
            v = np.concatenate([v, np.zeros(len(v) % 2, np.uint8)])
            m.buffers[t.buffer].data = (v[0::2] | (v[1::2] << 4)).astype(np.uint8)
            t.type = TensorType.INT4
    return edited_model(seed, edit)


def custom_op(seed: bytes, name: bytes = b"MyUnknownOp") -> bytes:
    """The first operator's code replaced by a custom operator LiteRT cannot resolve."""
    from ai_edge_litert import schema_py_generated as schema

    def edit(m):
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.customCode, oc.version = 32, 32, name, 1
        m.operatorCodes.append(oc)
        op = m.subgraphs[0].operators[0]
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.builtinOptionsType, op.builtinOptions = 0, None
    return edited_model(seed, edit)


def input_dimension(seed: bytes, size: int) -> bytes:
    """The model input's first dimension set to ``size`` (a few-KB file declaring huge activations)."""
    def edit(m):
        t = m.subgraphs[0].tensors[int(m.subgraphs[0].inputs[0])]
        t.shape = [size] + [int(d) for d in t.shape[1:]]
    return edited_model(seed, edit)


def operators_swapped(seed: bytes, a: int = 0, b: int = 1) -> bytes:
    """Operators ``a`` and ``b`` of subgraph 0 exchanged: each reads a tensor a later operator writes."""
    def edit(m):
        ops = m.subgraphs[0].operators
        ops[a], ops[b] = ops[b], ops[a]
    return edited_model(seed, edit)


def operator_cycle(seed: bytes) -> bytes:
    """Operator 0 reads operator 1's output, which reads operator 0's: a cycle (the graph input goes unread)."""
    def edit(m):
        ops = m.subgraphs[0].operators
        ops[0].inputs = [int(ops[1].outputs[0]), *(int(i) for i in ops[0].inputs[1:])]
    return edited_model(seed, edit)


def control_flow_op(seed: bytes, subgraph_index: int) -> bytes:
    """A CALL_ONCE operator first in subgraph 0, running subgraph ``subgraph_index``."""
    from ai_edge_litert import schema_py_generated as schema

    def edit(m):
        oc = schema.OperatorCodeT()
        code = schema.BuiltinOperator.CALL_ONCE
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        m.operatorCodes.append(oc)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes) - 1, [], []
        op.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
        op.builtinOptions = schema.CallOnceOptionsT()
        op.builtinOptions.initSubgraphIndex = subgraph_index
        m.subgraphs[0].operators.insert(0, op)
    return edited_model(seed, edit)


def tensor_name_bytes(seed: bytes, name: bytes) -> bytes:
    def edit(m):
        m.subgraphs[0].tensors[0].name = name
    return edited_model(seed, edit)


# --------------------------------------------------------------------------- running cases

SEED_NAMES = ("conv_bn_int8", "depthwise_int8", "dense_int8")
STAGES = ("read", "inspect", "palettise", "compile", "recluster", "verify")


@dataclass(frozen=True)
class Case:
    seed: str  # name of a seed model
    case_seed: int  # -1: the seed itself, unmutated


@dataclass
class CaseResult:
    case: Case
    outcome: str  # "ok", a ToolchainError class name, or for findings "crash:...", "hang", "unexpected:..."
    stage: str  # the stage that ended the case ("verify" when every stage accepted it)
    time_s: float
    peak_rss_bytes: int  # the worker's peak RSS after this case (monotone within a worker)
    detail: str = ""

    @property
    def finding(self) -> bool:
        return self.outcome.startswith(("crash", "hang", "unexpected", "memory"))


def _worker_stages(data: bytes, scratch: Path):
    """Yield (stage, callable) in pipeline order; each later stage re-reads the bytes itself."""
    from toolchain.palettes.table import PalettiseConfig, build_palette_set
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.inspect import inspect_model
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.rewrite.verify import VerifyOptions, verify
    from toolchain.targets.compile import compile_model
    from toolchain.targets.profiles import load_profile
    from toolchain.tflite.model_io import read_model

    path = scratch / "model.tflite"
    path.write_bytes(data)
    rewritten: list[bytes] = []

    def recluster() -> None:
        out, _ = recluster_model(data, ReclusterConfig(clusters=8))
        rewritten.append(out)

    yield "read", lambda: read_model(data)
    yield "inspect", lambda: inspect_model(data)
    yield "palettise", lambda: build_palette_set(data, PalettiseConfig(tflm=False))
    # The analytical target runs compile's whole in-process path (validation, model facts,
    # report, schema check) without Vela; Vela itself always runs in a subprocess.
    yield "compile", lambda: compile_model(path, load_profile("ethos-n78-1tops-4ple"), scratch / "compile", allow_cpu=True,
                                           enforce_budget=False)
    yield "recluster", recluster
    yield "verify", lambda: verify(data, rewritten[0], None, VerifyOptions(samples=2))


def _run_one(data: bytes, scratch: Path) -> tuple[str, str, str]:
    """(outcome, stage, detail) of one model through every stage."""
    import traceback

    from toolchain.core.errors import ToolchainError

    stage = "read"
    skip_palettise = False
    try:
        for stage, fn in _worker_stages(data, scratch):
            if stage == "palettise" and skip_palettise:
                continue
            try:
                fn()
            except ToolchainError as exc:
                if _caused_by_memory_error(exc):
                    return "memory:MemoryError", stage, str(exc)[:200]
                # palettise refuses models whose tensors all have > 128 values: not the end of the pipeline.
                if stage == "palettise" and "no weight tensor has at most" in str(exc):
                    skip_palettise = True
                    continue
                return type(exc).__name__, stage, str(exc)[:200]
        return "ok", stage, ""
    except RecursionError:
        return "unexpected:RecursionError", stage, traceback.format_exc()[-2000:]
    except Exception as exc:  # noqa: BLE001  a finding: an untyped error would reach the user as "internal error"
        return f"unexpected:{type(exc).__name__}", stage, traceback.format_exc()[-2000:]


def _caused_by_memory_error(exc: BaseException) -> bool:
    """A typed error raised while handling a MemoryError still means the input asked for too much."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 20:
        if isinstance(e, MemoryError):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _peak_rss_bytes() -> int:
    """This process's own peak RSS (VmHWM of its address space). Not getrusage's ru_maxrss: a child started
    by vfork/posix_spawn (subprocess without preexec_fn) inherits its parent's peak into ru_maxrss at exec,
    so a worker of a long test session would report the session's peak as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no procfs: the best figure there is


def _worker_main() -> int:
    """Read cases (JSON lines) on stdin, print one JSON result line per case, flushed."""
    import resource
    import signal
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    seeds_dir = Path(sys.argv[sys.argv.index("--worker") + 1])
    scratch_root = Path(sys.argv[sys.argv.index("--worker") + 2])
    memory_limit_bytes = int(sys.argv[sys.argv.index("--worker") + 3])
    # first, so a runaway allocation fails in the worker instead of hurting the machine
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    seeds = {p.stem: p.read_bytes() for p in seeds_dir.glob("*.tflite")}
    layouts = {name: layout(data) for name, data in seeds.items()}
    from ai_edge_litert import interpreter  # noqa: F401

    import toolchain.rewrite.recluster  # noqa: F401  (import cost before the first case's clock)

    scratch = Path(tempfile.mkdtemp(prefix="worker-", dir=scratch_root))
    self_test = os.environ.get("FUZZ_WORKER_SELF_TEST") == "1"
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        spec = json.loads(line)
        case = Case(spec["seed"], spec["case_seed"])
        if self_test and case.case_seed in (-2, -3):  # the runner's own test: crash, or hang
            print(json.dumps({"start": spec}), flush=True)
            if case.case_seed == -2:
                os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(3600)
        seed = seeds[case.seed]
        data = seed if case.case_seed < 0 else mutated_case(seed, layouts[case.seed], case.case_seed)
        print(json.dumps({"start": spec}), flush=True)
        t0 = time.perf_counter()
        outcome, stage, detail = _run_one(data, scratch)
        dt = time.perf_counter() - t0
        rss = _peak_rss_bytes()
        print(json.dumps({"outcome": outcome, "stage": stage, "time_s": dt, "rss": rss, "detail": detail}), flush=True)
    return 0


@dataclass
class _Worker:
    proc: subprocess.Popen
    buffer: bytes = b""

    eof: bool = False

    def readline(self, deadline: float) -> str | None:
        """The next line, or None on EOF (``eof`` set) or when ``deadline`` passes."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.eof = True
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return self.proc.returncode


def _start_worker(seeds_dir: Path, scratch_root: Path, memory_limit_bytes: int) -> _Worker:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    # The worker limits its own memory (no preexec_fn: forking a process with threads, as a test
    # session that has loaded TensorFlow is, and running Python in the child can deadlock).
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(seeds_dir), str(scratch_root),
         str(memory_limit_bytes)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(REPO),
    )
    w = _Worker(proc)
    line = w.readline(time.monotonic() + 120)
    if line is None or not json.loads(line).get("ready"):
        w.stop()
        raise RuntimeError("fuzz worker did not start")
    return w


def run_cases(
    cases: Iterable[Case],
    seeds_dir: Path,
    *,
    case_timeout_s: float = 10.0,
    deadline_s: float | None = None,
    memory_limit_bytes: int = 4 << 30,
    on_result: Callable[[int], None] | None = None,
) -> list[CaseResult]:
    """Run each case in a worker process; a worker that dies or stalls is replaced. ``on_result`` is called with
    the number of results so far after each case (a benchmark's progress line).

    Cases are sent one at a time, so a crash or a hang is attributed to exactly the
    case in flight. ``deadline_s`` bounds the whole run (cases not started are dropped).
    """
    import tempfile

    queue = list(cases)
    results: list[CaseResult] = []
    t_end = None if deadline_s is None else time.monotonic() + deadline_s
    worker: _Worker | None = None
    scratch = tempfile.TemporaryDirectory(prefix="fuzz-")  # workers' files, crashed ones' included
    try:
        i = 0
        while i < len(queue):
            if t_end is not None and time.monotonic() > t_end:
                break
            if worker is None:
                worker = _start_worker(seeds_dir, Path(scratch.name), memory_limit_bytes)
            case = queue[i]
            worker.proc.stdin.write((json.dumps({"seed": case.seed, "case_seed": case.case_seed}) + "\n").encode())
            worker.proc.stdin.flush()
            t0 = time.monotonic()
            started = worker.readline(t0 + case_timeout_s)
            line = worker.readline(t0 + case_timeout_s) if started is not None else None
            if line is None:
                if worker.eof:  # the worker died: wait for its status
                    try:
                        worker.proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        pass
                hung = worker.proc.poll() is None
                code = worker.stop()
                worker = None
                if hung:
                    outcome, detail = "hang", f"no result within {case_timeout_s:g} s"
                else:
                    outcome, detail = _death(code)
                results.append(CaseResult(case, outcome, "?", time.monotonic() - t0, 0, detail))
            else:
                r = json.loads(line)
                results.append(CaseResult(case, r["outcome"], r["stage"], r["time_s"], r["rss"], r["detail"]))
            i += 1
            if on_result is not None:
                on_result(len(results))
    finally:
        if worker is not None:
            worker.proc.stdin.close()
            worker.stop()
        scratch.cleanup()
    return results


def _death(code: int | None) -> tuple[str, str]:
    import signal

    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"crash:{name}", f"worker killed by {name}"
    return f"crash:exit{code}", f"worker exited with {code}"


def case_list(count: int, first_seed: int = 0, seeds: Sequence[str] = SEED_NAMES) -> list[Case]:
    """``count`` cases cycling over the seeds, plus each seed unmutated first (a control)."""
    out = [Case(s, -1) for s in seeds]
    out += [Case(seeds[i % len(seeds)], first_seed + i) for i in range(count)]
    return out


@dataclass(frozen=True)
class Summary:
    cases: int
    outcomes: dict[str, int]
    by_stage: dict[str, int]
    findings: list[dict]
    slowest: dict
    peak_rss_bytes: int
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "cases": self.cases,
            "outcomes": dict(sorted(self.outcomes.items())),
            "ended_at_stage": dict(sorted(self.by_stage.items())),
            "findings": self.findings,
            "slowest_case": self.slowest,
            "peak_rss_bytes": self.peak_rss_bytes,
            "elapsed_s": round(self.elapsed_s, 2),
            **self.extra,
        }


def summarise(results: Sequence[CaseResult], elapsed_s: float = 0.0) -> Summary:
    slow = max(results, key=lambda r: r.time_s)
    return Summary(
        cases=len(results),
        outcomes=dict(Counter(r.outcome for r in results)),
        by_stage=dict(Counter(r.stage for r in results)),
        findings=[{"seed": r.case.seed, "case_seed": r.case.case_seed, "outcome": r.outcome, "stage": r.stage,
                   "detail": r.detail} for r in results if r.finding],
        slowest={"seed": slow.case.seed, "case_seed": slow.case.case_seed, "time_s": round(slow.time_s, 4),
                 "outcome": slow.outcome, "stage": slow.stage},
        peak_rss_bytes=max(r.peak_rss_bytes for r in results),
        elapsed_s=elapsed_s,
    )


def write_seeds(directory: Path, models: dict[str, Path]) -> Path:
    """Copy the seed models into ``directory`` (the worker reads every *.tflite there)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in models.items():
        (directory / f"{name}.tflite").write_bytes(Path(path).read_bytes())
    return directory


if __name__ == "__main__" and "--worker" in sys.argv:
    sys.path.insert(0, str(REPO))
    sys.exit(_worker_main())
