"""The calibrated analytical Ethos-N78 estimate: each layer as the passes Arm's compiler makes of it.

Calibrated against Arm's own estimator (the support library of driver stack 25.03) on a grid of
single layers (``benchmarks/ethos_n_calibration.py``; the figures in
``benchmarks/results/ethos_n_calibration.json``, the errors in docs/targets.md). A layer becomes
the passes the library makes of it: a stride-2 convolution first interleaves its input (an
identity MCE pass with the PLE's 2x2 interleave), pooling and activations run as an identity
MCE pass with their PLE kernel, additions on the PLE alone. Each pass is planned and priced by
``ethos_n_passes``; the weights are sized by ``ethos_n_weights``, the encoder's own choices.

On the calibration grid each layer stands alone: its input is read from DRAM and its output
written back. In a network Arm's compiler keeps tensors in SRAM between layers where its section
search finds that cheaper; ``estimate_network`` runs the same search (``ethos_n_sections``: the
cheapest split of the layers into sections by the per-pass metric, within the SRAM). A PLE kernel
joins the pass of the convolution before it as Arm's compiler joins them (``ethos_n_fusion``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .ethos_n_fusion import counted_ops, ple_fusions, reshape_tensors
from .ethos_n_network import EthosNOpKind, Layer, Network, NpuOp
from .ethos_n_passes import BLOCKS, PLE_BLOCKS, Mce, PassFigures, PassShape, PleOp, plan_blocks, plan_cascade, plan_pass
from .ethos_n_sections import Part, Priced, best_split
from .ethos_n_variants import EthosNVariant, VariantHardware
from .ethos_n_weights import (
    OfmCode,
    depthwise_streams,
    direct_streams,
    fully_connected_streams,
    ofm_code,
    ofm_codes,
    winograd_streams,
)

FC_INPUT_MULTIPLE = 1024


@dataclass(frozen=True)
class OpEstimate:
    cycles: int
    mce_cycles: int
    ple_cycles: int
    dram_bytes: int
    encoded_weight_bytes: int
    sram_bytes: int  # the largest SRAM working set of its passes' plans
    passes: int
    metric: float = 0.0  # what Arm's compiler minimises (ethos_n_passes.PassFigures.metric), summed over its passes


def _hwc(shape: tuple[int, int, int, int]) -> tuple[int, int, int]:
    return shape[1], shape[2], shape[3]


def _identity_codes(channels: int, hw: VariantHardware) -> tuple[OfmCode, ...]:
    """The one-weight-per-channel identity the library gives pooling and activation passes."""
    return (ofm_code(np.ones(1, np.int16), 0, hw),) * channels


def _weight_codes(op: NpuOp, hw: VariantHardware, winograd: bool) -> tuple[OfmCode, ...]:
    w = op.weights
    assert w is not None
    if op.kind is EthosNOpKind.DEPTHWISE:
        streams = depthwise_streams(w.values, op.stride_hw, op.padding[::2])
    elif op.kind is EthosNOpKind.FULLY_CONNECTED:
        streams = fully_connected_streams(w.values, w.zero_point, hw)
    elif winograd:
        streams = winograd_streams(w.values, w.zero_point)
    else:
        streams = direct_streams(w.values, w.zero_point, op.stride_hw, (op.padding[0], op.padding[2]), hw)
    return tuple(ofm_codes(streams, w.zero_point, hw))


def _interleave(in_hwc: tuple[int, int, int], hw: VariantHardware) -> PassShape:
    h, w, c = in_hwc
    out = (-(-h // 2), -(-w // 2), c * 4)
    return PassShape(Mce.DEPTHWISE, PleOp.INTERLEAVE_2X2, in_hwc, out, in_hwc, output_in_dram=False,
                     weight_codes=_identity_codes(c, hw))


def op_passes(op: NpuOp, net: Network, hw: VariantHardware) -> list[tuple[PassShape, NpuOp | None]]:
    """The passes of one operation, each with the operation whose weights it encodes (None: identity)."""
    x = _hwc(net.input_of(op).shape)
    out = _hwc(op.out.shape)
    k = op.kind
    if k in (EthosNOpKind.CONV, EthosNOpKind.DEPTHWISE):
        mce = Mce.CONV if k is EthosNOpKind.CONV else Mce.DEPTHWISE
        strided = op.stride_hw != (1, 1)
        first = [(_interleave(x, hw), None)] if strided else []
        main = PassShape(mce, PleOp.PASSTHROUGH, x, out, out, op.kernel_hw, input_in_dram=not strided,
                         cascade_end=strided)
        return [*first, (main, op)]
    if k is EthosNOpKind.FULLY_CONNECTED:
        # The input, padded to 1024, is read as 8x8 bricks: a 1x1 convolution over 1/64 of the channels
        padded = -(-x[2] // FC_INPUT_MULTIPLE) * FC_INPUT_MULTIPLE
        return [(PassShape(Mce.FULLY_CONNECTED, PleOp.PASSTHROUGH, (1, 1, padded), out, out), op)]
    if k is EthosNOpKind.ADD:
        same = len({net.input_of(op, i).scale for i in range(2)} | {op.out.scale}) == 1
        ple = PleOp.ADDITION if same else PleOp.ADDITION_RESCALE
        return [(PassShape(Mce.NONE, ple, x, out, x, inputs=2), None)]
    if k is EthosNOpKind.POOL and not op.pool_max and op.kernel_hw == (3, 3) and op.stride_hw == (1, 1):
        return [(PassShape(Mce.NONE, PleOp.AVGPOOL_3X3, x, out, x), None)]
    ple = {EthosNOpKind.POOL: PleOp.MAXPOOL_2X2 if op.kernel_hw == (2, 2) else PleOp.MAXPOOL_3X3,
           EthosNOpKind.MEAN_XY: PleOp.MEAN_XY, EthosNOpKind.SIGMOID: PleOp.SIGMOID, EthosNOpKind.TANH: PleOp.SIGMOID,
           EthosNOpKind.LEAKY_RELU: PleOp.LEAKY_RELU}.get(k, PleOp.PASSTHROUGH)
    if k is EthosNOpKind.POOL and not op.pool_max:  # the global average: the library's MEAN kernel
        ple = PleOp.MEAN_XY
    return [(PassShape(Mce.DEPTHWISE, ple, x, out, x, weight_codes=_identity_codes(x[2], hw)), None)]


def _coded(shape: PassShape, weighted: NpuOp | None, hw: VariantHardware, winograd: bool = False) -> PassShape:
    if weighted is None:
        return shape
    per_channel = len(weighted.weights.scales) > 1  # type: ignore[union-attr]
    return replace(shape, weight_codes=_weight_codes(weighted, hw, winograd), per_channel=per_channel)


def _plan(shape: PassShape, weighted: NpuOp | None, hw: VariantHardware, sram_bytes: int) -> PassFigures:
    # The encoding follows the algorithm: price direct and Winograd plans with their own weights
    algorithms = (False, True) if weighted is not None and weighted.kind is EthosNOpKind.CONV \
        and weighted.stride_hw == (1, 1) and weighted.kernel_hw != (1, 1) else (False,)
    return min((plan_pass(_coded(shape, weighted, hw, w), hw, sram_bytes, winograd=w) for w in algorithms
                if plan_blocks(shape, w)), key=lambda f: f.metric)


def _uncascaded(passes: list[tuple[PassShape, NpuOp | None]]) -> list[tuple[PassShape, NpuOp | None]]:
    """The same passes in sections of their own: each tensor between them goes through DRAM (NHWCB)."""
    out = []
    for i, (shape, weighted) in enumerate(passes):
        if i > 0:
            shape = replace(shape, cascade_end=False, input_in_dram=True, input_interleaved=True)
        if i < len(passes) - 1:
            shape = replace(shape, output_in_dram=True, output_bricked=True)
        out.append((shape, weighted))
    return out


def estimate_op(op: NpuOp, net: Network, hw: VariantHardware, sram_bytes: int,
                in_sram: bool = False, out_sram: bool = False, fused: PassShape | None = None,
                kernel_fused_away: bool = False) -> OpEstimate:
    """``in_sram``/``out_sram``: the input is already in, or the output stays in, SRAM (a cascade). ``fused``: a PLE
    kernel pass of the next layer that runs in this operation's last pass; ``kernel_fused_away``: this operation's
    first pass (such a kernel) runs in the previous layer's pass (``ethos_n_fusion``).

    A layer of two passes (the interleave of a strided convolution, then the convolution) is one cascade, the
    second pass limited to the plans that can end one, or two sections with the interleaved tensor in DRAM,
    whichever the library's metric finds cheaper (CombinerDFS: each section's best, then the best split).
    """
    passes = op_passes(op, net, hw)
    if kernel_fused_away:
        passes = passes[1:]
        if not passes:
            return OpEstimate(0, 0, 0, 0, 0, 0, 0)
        # What is left reads the kernel's output (an interleaved tensor) from DRAM, or from SRAM
        passes[0] = (replace(passes[0][0], cascade_end=False, input_in_dram=not in_sram, input_interleaved=True),
                     passes[0][1])
    if fused is not None:
        passes[-1] = (replace(passes[-1][0], ple=fused.ple, out_hwc=fused.out_hwc), passes[-1][1])
    if in_sram:
        passes[0] = (replace(passes[0][0], input_in_dram=False), passes[0][1])
    if out_sram:
        passes[-1] = (replace(passes[-1][0], output_in_dram=False), passes[-1][1])
    figures = [_plan(shape, weighted, hw, sram_bytes) for shape, weighted in _uncascaded(passes)]
    # The interleave and the strided convolution; a cascade's end has 16x16 blocks, which its PLE kernel must allow
    if len(passes) == 2 and (16, 16) in PLE_BLOCKS[passes[1][0].ple]:
        (first, w0), (end, w1) = passes
        cascade = plan_cascade(_coded(first, w0, hw), _coded(end, w1, hw), hw, sram_bytes)
        figures = min((cascade, figures), key=lambda fs: sum(f.metric for f in fs))
    return OpEstimate(
        cycles=round(sum(f.cycles for f in figures)),
        mce_cycles=sum(f.mce_cycles for f in figures),
        ple_cycles=sum(f.ple_cycles for f in figures),
        dram_bytes=sum(f.dram_bytes for f in figures),
        encoded_weight_bytes=sum(f.weight_bytes for f in figures),  # the identity passes' weights too
        sram_bytes=max(f.sram_bytes for f in figures),
        passes=len(figures),
        metric=sum(f.metric for f in figures),
    )


# What Arm's library (25.03, SupportQueries.cpp) estimates only, with "zero performance impact", in its words
_CONV_KERNELS = {1, 2, 3, 5, 7, 9}


def unsupported_reason(layer: Layer) -> str | None:
    """Why the support library would not run a mapped layer on the NPU (its own reason), or None."""
    op = layer.main
    if op.kind is EthosNOpKind.FULLY_CONNECTED and op.weights is not None and len(op.weights.scales) > 1:
        return "Multiple quantization scales is not supported for FullyConnected operation"
    if op.kind in (EthosNOpKind.CONV, EthosNOpKind.DEPTHWISE):
        kh, kw = op.kernel_hw
        if kh not in _CONV_KERNELS or kw not in _CONV_KERNELS:
            return f"Unsupported kernel size. Width({kw})/height({kh}) must be in {{ 1, 2, 3, 5, 7, 9 }}"
        if op.stride_hw[0] != op.stride_hw[1] or op.stride_hw[0] not in (1, 2):
            return "Unsupported stride. Stride X and Y must be equal and in { 1, 2 }"
    if op.kind is EthosNOpKind.POOL and not op.pool_max:
        glob = op.out.shape[1:3] == (1, 1) and op.padding == (0, 0, 0, 0)
        if not ((glob and op.kernel_hw in ((7, 7), (8, 8))) or
                (op.kernel_hw == (3, 3) and op.stride_hw == (1, 1) and op.padding == (1, 1, 1, 1))):
            return "Unsupported configuration in AVG pooling"
    return None


def estimate_layer(layer: Layer, net: Network, variant: EthosNVariant, sram_bytes: int,
                   in_sram: bool = False, out_sram: bool = False, fused: PassShape | None = None,
                   kernel_fused_away: bool = False) -> OpEstimate | None:
    """The layer's passes summed; None for a layer that does not run on the NPU (``unsupported_reason``, or no
    library operation at all). ``fused``/``kernel_fused_away``: see ``estimate_op``.

    A fused activation (a ReLU after a convolution) runs in the convolution's PLE: it costs nothing more.
    """
    if not layer.mapped or unsupported_reason(layer):
        return None
    hw = variant.hardware
    ops = counted_ops(layer)
    last = len(ops) - 1
    parts = [estimate_op(op, net, hw, sram_bytes, in_sram and i == 0, out_sram and i == last,
                         fused if i == last else None, kernel_fused_away and i == 0)
             for i, op in enumerate(ops)]
    if not parts:
        return OpEstimate(0, 0, 0, 0, 0, 0, 0)
    return OpEstimate(*((max if f == "sram_bytes" else sum)(getattr(p, f) for p in parts)
                        for f in OpEstimate.__dataclass_fields__))


def _end_pass(layer: Layer, net: Network, hw: VariantHardware, first: bool) -> tuple[PassShape, NpuOp | None] | None:
    ops = counted_ops(layer)
    if not ops:
        return None
    passes = op_passes(ops[0] if first else ops[-1], net, hw)
    return passes[0] if first else passes[-1]


def estimate_network(net: Network, variant: EthosNVariant, sram_bytes: int,
                     sections: bool = True, fuse_ple: bool = True) -> dict[int, OpEstimate | None]:
    """Each layer's estimate (None: not on the NPU). With ``sections`` the tensors between NPU layers stay in SRAM
    where Arm's section search keeps them (``ethos_n_sections``), except what a reshape reads or writes. With
    ``fuse_ple`` a PLE kernel joins the pass of the convolution before it (``ethos_n_fusion``), counted under the
    convolution's layer as Arm counts a pass under its first layer. Neither: every layer standing alone."""
    hw = variant.hardware
    on_npu = {layer.index for layer in net.layers if layer.mapped and not unsupported_reason(layer)}
    consumers: dict[int, set[int]] = {}
    for layer in net.layers:
        for op in layer.ops:
            for t in op.inputs:
                consumers.setdefault(t, set()).add(layer.index)
    tensors = net.tensors()
    outputs = set(net.outputs)
    in_dram = reshape_tensors(net)
    fusions = ple_fusions(net, on_npu, lambda la: _end_pass(la, net, hw, True),
                          lambda la: _end_pass(la, net, hw, False)) if fuse_ple else {}
    by_index = {layer.index: layer for layer in net.layers}
    fused_into = set(fusions.values())
    cache: dict[tuple[int, bool, bool], OpEstimate | None] = {}

    def estimate(index: int, in_sram: bool, out_sram: bool) -> OpEstimate | None:
        if (index, in_sram, out_sram) not in cache:
            fused = _end_pass(by_index[fusions[index]], net, hw, True) if index in fusions else None
            cache[index, in_sram, out_sram] = estimate_layer(
                by_index[index], net, variant, sram_bytes, in_sram, out_sram, fused[0] if fused else None,
                index in fused_into)
        return cache[index, in_sram, out_sram]

    size = {t: _bricks(d.shape[1:]) for t, d in tensors.items()}
    absorbed = {i for i in fused_into if (e := estimate(i, False, False)) is not None and e.passes == 0}
    parts = []
    for layer in net.layers:
        if layer.index in absorbed:
            continue  # all of it runs in the pass before it
        # A kernel fused into the pass before a layer that has passes left (the interleave before a strided
        # convolution) writes a tensor of its own, which only that layer reads (named by a negative id). The
        # section holds it as a strided layer's own cascade holds it (``plan_cascade``): in the stripes of the two
        # plans, the whole tensor only where those hold it
        reads = (-1 - layer.index,) if layer.index in fused_into else layer.ops[0].inputs
        writes = layer.ops[-1].output
        if layer.index in fusions:
            reader = fusions[layer.index]
            writes = by_index[reader].ops[-1].output if reader in absorbed else -1 - reader
            if reader not in absorbed:
                consumers[writes], size[writes] = {reader}, 0
        keepable = (writes not in outputs and writes not in in_dram
                    and all(c in on_npu for c in consumers.get(writes, ())))
        alone = estimate(layer.index, False, False)
        barrier = alone is None or alone.passes == 0 or any(t in in_dram for t in reads)
        parts.append(Part(layer.index, tuple(reads), writes, keepable, barrier,
                          _blocks(layer, net, hw, fusions.get(layer.index), by_index, layer.index in fused_into)))
    flags = {p.layer: (False, False) for p in parts}
    if sections:
        def price(k: int, in_sram: bool, out_sram: bool) -> Priced:
            e = estimate(parts[k].layer, in_sram, out_sram)
            return Priced(e.metric, e.sram_bytes) if e is not None else Priced(0.0, 0)

        for first, last in best_split(parts, consumers, size, price, sram_bytes):
            written: set[int] = set()
            for k in range(first, last + 1):
                flags[parts[k].layer] = (all(t in written for t in parts[k].reads), k < last)
                written.add(parts[k].writes)
    return {layer.index: estimate(layer.index, *flags.get(layer.index, (False, False))) for layer in net.layers}


def _blocks(layer: Layer, net: Network, hw: VariantHardware, fused: int | None, by_index: dict[int, Layer],
            fused_away: bool) -> frozenset[tuple[int, int]]:
    """The block configurations every PLE kernel of the layer's passes has (a fused kernel's too)."""
    kernels = [shape.ple for op in counted_ops(layer) for shape, _ in op_passes(op, net, hw)][1 if fused_away else 0:]
    if fused is not None:
        kernel = _end_pass(by_index[fused], net, hw, True)
        kernels.append(kernel[0].ple if kernel else PleOp.PASSTHROUGH)
    blocks = frozenset(BLOCKS)
    for k in kernels:
        blocks &= frozenset(PLE_BLOCKS[k])
    return blocks


def _bricks(hwc: tuple[int, ...]) -> int:
    """A tensor's bytes in SRAM: whole 8x8 bricks of 16 channels."""
    h, w, c = hwc
    return -(-h // 8) * 8 * -(-w // 8) * 8 * -(-c // 16) * 16
