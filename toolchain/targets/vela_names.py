"""Keeping hostile names away from Vela: placeholders going in, the real names coming back.

Vela writes tensor names and custom operator codes unescaped into its debug XML, its
per-layer CSV and its stdout, which we parse: a ``"`` or ``]]>`` in a name breaks the
XML, a ``,`` or a newline the CSV rows, a newline the stdout lines. Converter names
never hold such characters. Only for a model whose names do, Vela compiles a copy in
which those names are placeholders (``toolchain_t<subgraph>_<tensor>``,
``toolchain_op<code>``); the real names are then put back into Vela's output model (so
firmware and palettes still match tensors by name) and into the figures read from
Vela's files. Vela's own text files keep the placeholders.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import ModelFormatError
from ..tflite.graph import BuiltinOp, tensor_name
from ..tflite.model_io import read_model, write_model

_UNSAFE_FOR_VELA = frozenset("\"'<>&]\\,")
PLACEHOLDER_PREFIX = "toolchain_"


def safe_for_vela(text: str) -> bool:
    """True for names Vela's text outputs carry intact (printable, none of ``"'<>&]\\,``)."""
    return text.isprintable() and not (_UNSAFE_FOR_VELA & set(text))


@dataclass(frozen=True)
class VelaNames:
    """Placeholder -> real name, for the tensor names and custom operator codes that were replaced."""

    real: dict[str, str] = field(default_factory=dict)

    def original(self, name: str) -> str:
        """The real name behind ``name``; Vela's derived names (placeholder + "_suffix") keep their suffix."""
        if name in self.real:
            return self.real[name]
        if name.startswith(PLACEHOLDER_PREFIX):
            for placeholder in sorted(self.real, key=len, reverse=True):
                if name.startswith(placeholder + "_"):
                    return self.real[placeholder] + name[len(placeholder):]
        return name


def _unique(wanted: str, taken: set[str]) -> str:
    name = wanted
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def model_for_vela(data: bytes) -> tuple[bytes, VelaNames]:
    """``data`` unchanged when every name is safe (or when it is no model we can read: Vela's own error then
    says so); else a copy with placeholders, and the mapping back."""
    try:
        model = read_model(data)
    except ModelFormatError:
        return data, VelaNames()
    taken = {tensor_name(t) for sg in model.subgraphs for t in sg.tensors or []}
    real: dict[str, str] = {}
    seen: set[str] = set()
    for s, sg in enumerate(model.subgraphs):
        for t, tensor in enumerate(sg.tensors or []):
            name = tensor_name(tensor)
            repeated = name in seen  # Vela's rows are told apart by name: a repeat gets a placeholder too
            seen.add(name)
            if repeated or not safe_for_vela(name):
                placeholder = _unique(f"{PLACEHOLDER_PREFIX}t{s}_{t}", taken)
                real[placeholder] = name
                tensor.name = placeholder.encode()
    for i, oc in enumerate(model.operatorCodes or []):
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) != BuiltinOp.CUSTOM or oc.customCode is None:
            continue
        code = oc.customCode.decode("utf-8", "replace") if isinstance(oc.customCode, bytes) else str(oc.customCode)
        if not safe_for_vela(code):
            placeholder = _unique(f"{PLACEHOLDER_PREFIX}op{i}", taken)
            real[placeholder] = code
            oc.customCode = placeholder.encode()
    if not real:
        return data, VelaNames()
    return write_model(model), VelaNames(real)


def restore_names(vela_model: bytes, names: VelaNames) -> bytes:
    """Vela's output model with the real tensor names and custom codes back in place of the placeholders."""
    if not names.real:
        return vela_model
    model = read_model(vela_model)
    for sg in model.subgraphs:
        for tensor in sg.tensors or []:
            name = tensor_name(tensor)
            if name.startswith(PLACEHOLDER_PREFIX):
                tensor.name = names.original(name).encode("utf-8")
    for oc in model.operatorCodes or []:
        code = oc.customCode.decode("utf-8", "replace") if isinstance(oc.customCode, bytes) else oc.customCode
        if code in names.real:
            oc.customCode = names.real[code].encode("utf-8")
    return write_model(model)
