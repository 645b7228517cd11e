"""Where Arm's compiler joins two model layers into one Ethos-N pass, and where a tensor must go through DRAM.

A PLE kernel that Arm's library makes a ``FusedPlePart`` of (the 2x2 interleave before a strided
convolution, the mean, max pooling, sigmoid, tanh, leaky ReLU: ``NetworkToGraphOfPartsConverter.cpp``)
can run in the PLE of the MCE pass that produces its input. When every consumer of an MCE part's output
takes a PLE input buffer (``GraphOfParts.cpp``: ``CanInputsTakePleInputSram``, true only for a
FusedPlePart), the McePart's cascade plans stop after the MCE (``McePart.cpp``: ``CreateMceOnlyPlans``)
and the FusedPlePart continues the section with a PLE-only plan on that buffer
(``FusedPlePart::GenerateContinueSectionPlans``, ``CreateFuseOnlyPlans``): one pass, no identity
MCE pass and no identity weights for the kernel. Where the joined pass writes is Arm's section search's
choice (``ethos_n_sections``); a section keeps its first plan's block configuration, so a fused kernel
joins a section only when it has that block (the interleave 16x16, the mean 8x8).

A reshape has only lonely plans that copy NHWC DRAM to DRAM (``ReshapePart::GetPlans``): what it reads
and what it writes are in DRAM, whatever their size.
"""
from __future__ import annotations

from .ethos_n_network import EthosNOpKind, Layer, Network, NpuOp
from .ethos_n_passes import Mce, PassShape, PleOp


def counted_ops(layer: Layer) -> list[NpuOp]:
    """The operations that make passes: a ReLU after a convolution runs in its PLE, a reshape is no pass."""
    return [op for op in layer.ops
            if not (op.kind is EthosNOpKind.RELU and op is not layer.main) and op.kind is not EthosNOpKind.RESHAPE]


def is_fused_kernel(shape: PassShape, weighted: NpuOp | None) -> bool:
    """A pass that is a FusedPlePart of Arm's: an identity MCE (no weights of the model) before a PLE kernel."""
    return weighted is None and shape.mce is Mce.DEPTHWISE and shape.ple is not PleOp.PASSTHROUGH


def takes_fused_kernel(shape: PassShape) -> bool:
    """An MCE pass of the model's weights whose PLE only passes the output through (an McePart)."""
    return shape.mce in (Mce.CONV, Mce.DEPTHWISE, Mce.FULLY_CONNECTED) and shape.ple is PleOp.PASSTHROUGH


def reshape_tensors(net: Network) -> set[int]:
    """The tensors a reshape reads or writes: always in DRAM (ReshapePart::GetPlans)."""
    out: set[int] = set()
    for layer in net.layers:
        for op in layer.ops:
            if op.kind is EthosNOpKind.RESHAPE:
                out.update(op.inputs)
                out.add(op.output)
    return out


def ple_fusions(net: Network, on_npu: set[int], first_pass, last_pass) -> dict[int, int]:
    """{producer layer: consumer layer} whose consumer's first pass (a FusedPlePart kernel) runs in the PLE of the
    producer's last pass: the consumer is the only reader of the producer's output, which the network does not
    output. ``first_pass(layer)``/``last_pass(layer)``: (shape, weighted op) of its first/last pass, or None."""
    producer = {op.output: layer.index for layer in net.layers for op in layer.ops}
    readers: dict[int, set[int]] = {}
    for layer in net.layers:
        for op in layer.ops:
            for t in op.inputs:
                readers.setdefault(t, set()).add(layer.index)
    by_index = {layer.index: layer for layer in net.layers}
    outputs = set(net.outputs)
    fused: dict[int, int] = {}
    for layer in net.layers:
        if layer.index not in on_npu or not counted_ops(layer):
            continue
        first = first_pass(layer)
        op = counted_ops(layer)[0]
        if first is None or not is_fused_kernel(*first) or len(op.inputs) != 1:
            continue
        t = op.inputs[0]
        p = producer.get(t)
        if p is None or p not in on_npu or t in outputs or readers.get(t) != {layer.index}:
            continue
        last = last_pass(by_index[p])
        if by_index[p].ops[-1].output != t or last is None or not takes_fused_kernel(last[0]):
            continue
        fused[p] = layer.index
    return fused
