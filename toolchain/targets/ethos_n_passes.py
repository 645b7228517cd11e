"""Cycles of one Ethos-N78 pass, by the cost model Arm's support library plans with.

A pass moves its input and weights from DRAM in stripes, runs the MAC engine (MCE) and the
programmable layer engine (PLE), and writes its output back. Arm's compiler tries many plans
(stripe sizes, block configurations, Winograd or direct convolution) and keeps the one its cost
model (``CalculateMetric``) finds cheapest. That metric is not the figure the library reports
(``ethos_n_arm``'s restatement, what ``cycles`` models): it adds per-stripe MCE and PLE overheads
and prices the DRAM side as the temporary tensors of the compiler's search, in DMA chunks. This
module chooses by the metric and reports the figure, on a small set of plans (and, for a cascade,
the pairs of plans that can form one: ``plan_cascade``), with the library's formulas where it has them (25.03,
``MceEstimationUtils.cpp`` for MCE cycles, ``EstimationUtils.cpp`` for PLE cycles) and a
simplified SRAM budget: a plan fits when its input, weight and output stripes, double-buffered
when there is more than one, fit the SRAM.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import partial

from .ethos_n_arm import STRIPE_MIN_CYCLES, STRIPE_OVERHEAD_CYCLES, stream_cycles
from .ethos_n_variants import VariantHardware
from .ethos_n_weights import OfmCode, packed_bytes

PATCH_HW = 4  # the PLE works on 4x4 patches
BRICK_HW = 8  # tensors in SRAM are 8x8 bricks of 16 channels
BLOCKS = ((16, 16), (32, 8), (8, 32), (16, 8), (8, 16), (8, 8))  # width, height
WINOGRAD_MACS_PER_BLOCK = 16
BLOCK_OVERHEAD_CYCLES = 10
MULTIPLIED_BLOCK_OVERHEAD_CYCLES = 100
ACCUMULATORS_PER_OG = 512


class PleOp(Enum):
    PASSTHROUGH = "passthrough"
    INTERLEAVE_2X2 = "interleave_2x2"
    MAXPOOL_2X2 = "maxpool_2x2"
    MAXPOOL_3X3 = "maxpool_3x3"
    MEAN_XY = "mean_xy"
    LEAKY_RELU = "leaky_relu"
    SIGMOID = "sigmoid"
    AVGPOOL_3X3 = "avgpool_3x3"
    ADDITION = "addition"
    ADDITION_RESCALE = "addition_rescale"

    @property
    def cycles_per_patch(self) -> int:
        return _PLE_KERNELS[self][0]

    @property
    def stripe_overhead_cycles(self) -> int:
        """GetPleStripeOverhead: 1,500 cycles a stripe for the additions, 100 for the others."""
        return 1500 if self in (PleOp.ADDITION, PleOp.ADDITION_RESCALE) else 100

    @property
    def blocked(self) -> bool:
        """Whether it works in the MCE's blocks (and pays their overhead); standalone kernels do not."""
        return _PLE_KERNELS[self][1]


# GetPleCyclesPerPatch, and whether GetPleStats counts a block configuration for the kernel
_PLE_KERNELS = {
    PleOp.PASSTHROUGH: (6, True), PleOp.INTERLEAVE_2X2: (13, True), PleOp.MAXPOOL_2X2: (13, True),
    PleOp.MAXPOOL_3X3: (37, True), PleOp.MEAN_XY: (37, True), PleOp.LEAKY_RELU: (37, True),
    PleOp.SIGMOID: (41, True), PleOp.AVGPOOL_3X3: (97, False), PleOp.ADDITION: (15, False),
    PleOp.ADDITION_RESCALE: (35, False),
}

# The PLE kernels the library has (PleKernelDatabaseGenerated.hpp, the same for every variant it
# estimates): block (width, height) -> the block multipliers built for it. A plan's block must be one.
_ANY_BLOCK = {(16, 16): (1,), (16, 8): (1, 2), (32, 8): (1,), (8, 16): (1,), (8, 32): (1,), (8, 8): (1, 2, 4)}
PLE_BLOCKS: dict[PleOp, dict[tuple[int, int], tuple[int, ...]]] = {
    PleOp.PASSTHROUGH: _ANY_BLOCK, PleOp.SIGMOID: _ANY_BLOCK, PleOp.LEAKY_RELU: _ANY_BLOCK,
    PleOp.INTERLEAVE_2X2: {(16, 16): (1,)},
    PleOp.MAXPOOL_2X2: {(16, 16): (1,), (16, 8): (2,), (32, 8): (1,), (8, 8): (4,)},
    PleOp.MAXPOOL_3X3: {(16, 8): (2,), (32, 8): (1,), (8, 8): (4,)},
    PleOp.MEAN_XY: {(8, 8): (1,)},
    PleOp.AVGPOOL_3X3: {(16, 16): (1,)}, PleOp.ADDITION: {(16, 16): (1,)}, PleOp.ADDITION_RESCALE: {(16, 16): (1,)},
}


def block_multiplier(op: PleOp, block: tuple[int, int], stripe_width: int) -> int:
    """The library's pick (OpGraph.cpp): the first multiplier m with m x block width >= the stripe's width, else
    the largest there is."""
    options = PLE_BLOCKS[op][block]
    return next((m for m in options if m * block[0] >= stripe_width), options[-1])


class Mce(Enum):
    NONE = "none"
    CONV = "conv"
    DEPTHWISE = "depthwise"  # also the identity the library puts before pooling and interleaving
    FULLY_CONNECTED = "fully_connected"


@dataclass(frozen=True)
class PassShape:
    mce: Mce
    ple: PleOp
    in_hwc: tuple[int, int, int]  # the pass's input (per input, for additions)
    out_hwc: tuple[int, int, int]  # the PLE's output
    mce_out_hwc: tuple[int, int, int]  # the MCE's output = the PLE's input
    kernel_hw: tuple[int, int] = (1, 1)
    inputs: int = 1
    input_in_dram: bool = True
    output_in_dram: bool = True
    weight_codes: tuple[OfmCode, ...] = ()  # per OFM; empty without weights
    per_channel: bool = False  # the weights' scales: per output channel, or one
    # Ends a cascade: its input is the SRAM buffer the pass before it wrote (McePart::GetEndPlans), not DRAM
    cascade_end: bool = False
    # DRAM tensors other passes read or wrote (NHWCB, whole bricks); an interleaved input is that of in_hwc
    output_bricked: bool = False
    input_interleaved: bool = False


@dataclass(frozen=True)
class PassFigures:
    cycles: float
    mce_cycles: int
    ple_cycles: int
    dram_bytes: int
    weight_bytes: int  # encoded, loaded once
    winograd: bool
    sram_bytes: int = 0  # the plan's stripes in SRAM
    stripes: tuple[int, int] = (1, 1)  # the plan: stripes in height and width, in depth
    block: tuple[int, int] = (16, 16)  # the plan: the block configuration (width, height)
    metric: float = 0.0  # what the library's compiler minimises: ``cycles`` with the MCE and PLE stripe overheads
    stripe_hwc: tuple[int, int, int] = (0, 0, 0)  # the plan: the MCE's output stripe


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _rup(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def mce_direct(hw: VariantHardware, mce: Mce, kernel_hw: tuple[int, int], cin: int, out_hwc: tuple[int, int, int]) -> int:
    """GetMceCycleCountDirect (a fully connected layer runs as a 1x1 convolution on 8x8 bricks)."""
    oh, ow, cout = out_hwc
    igs, ogs = hw.input_channels_per_cycle, hw.output_channels_per_cycle
    if mce is Mce.DEPTHWISE:
        active, per_unit, ifms = igs, 1, 1
    else:
        active, per_unit, ifms = ogs, igs, cin
    macs = kernel_hw[0] * kernel_hw[1] * _rup(oh, PATCH_HW) * _rup(ow, 2) * _rup(ifms, per_unit) * _rup(cout, active)
    return macs // (per_unit * 8 * active)


def mce_winograd(hw: VariantHardware, kernel_hw: tuple[int, int], cin: int, out_hwc: tuple[int, int, int],
                 block: tuple[int, int]) -> int:
    """GetMceCycleCountWinograd: 2x2 output tiles (4x2 for 1-D kernels), at least the weight transform."""
    oh, ow, cout = out_hwc
    kh, kw = kernel_hw
    igs, ogs = hw.input_channels_per_cycle, hw.output_channels_per_cycle
    ofms_per_og = _cdiv(cout, ogs)
    blocks = ofms_per_og * _cdiv(oh, block[1]) * _cdiv(ow, block[0])
    tile_w, tile_h = (2, 4) if kw == 1 else (4, 2) if kh == 1 else (2, 2)
    outputs = _cdiv(ow, tile_w) * _cdiv(oh, tile_h)
    subfilters = _cdiv(kw, 1 if kw == 1 else 3) * _cdiv(kh, 1 if kh == 1 else 3)
    mac_ops = outputs * WINOGRAD_MACS_PER_BLOCK * subfilters
    cycles = _rup(cin, igs) * mac_ops // (igs * 8) * ofms_per_og
    return max(cycles, blocks * cin * subfilters * 2)


def ple_cycles(hw: VariantHardware, op: PleOp, in_hwc: tuple[int, int, int], out_hwc: tuple[int, int, int],
               block: tuple[int, int], multiplier: int = 1) -> int:
    """GetPleStats: 4x4 patches of the PLE's input (rounded up to whole blocks) plus a per-block overhead."""
    h, w, c = in_hwc
    if op.blocked:
        h, w = _rup(h, block[1]), _rup(w, block[0])
    patches_c = _cdiv(c, hw.engines * hw.ple_lanes)
    cycles = _cdiv(h, PATCH_HW) * _cdiv(w, PATCH_HW) * patches_c * op.cycles_per_patch
    if op.blocked:
        blocks = _cdiv(out_hwc[0], block[1]) * _cdiv(out_hwc[1], block[0]) * patches_c
        cycles += BLOCK_OVERHEAD_CYCLES * blocks + MULTIPLIED_BLOCK_OVERHEAD_CYCLES * (blocks // multiplier)
    return cycles


def _loop(size: int, base: int, inclusive: bool) -> list[int]:
    """StripeShapeLoop: stripe sizes base x 1, 2, 4 ... below the tensor's size (and the whole of it: inclusive)."""
    top = _cdiv(size, base)
    if inclusive:
        mults, m = [], 1
        while m < top:
            mults.append(m)
            m *= 2
        return [min(base * m, size) for m in mults] + [size]
    m = 1 << (top.bit_length() - 1)
    if m * base >= size:
        m //= 2
    out = []
    k = 1
    while 1 <= k <= m:
        out.append(base * k)
        k *= 2
    return out


def _stripe_shapes(s: PassShape, block: tuple[int, int], hw: VariantHardware) -> set[tuple[int, int, int]]:
    """(height, width, depth) of the MCE's output stripes the library's StripeGenerator tries for a pass
    standing alone: height, width, both, output depth (with height and width at one depth step), none."""
    h, w, c = s.mce_out_hwc
    base_h, base_w = max(block[1], BRICK_HW), max(block[0], BRICK_HW)
    base_c = hw.sram_controllers if s.mce in (Mce.DEPTHWISE, Mce.NONE) else hw.output_channels_per_cycle
    shapes = {(h, w, c)}
    shapes |= {(sh, w, c) for sh in _loop(h, base_h, False)}
    shapes |= {(h, sw, c) for sw in _loop(w, base_w, False)}
    both = [(sh, sw) for sh in _loop(h, base_h, True) for sw in _loop(w, base_w, True)]
    shapes |= {(sh, sw, c) for sh, sw in both}
    if s.mce is not Mce.NONE:
        shapes |= {(h, w, d) for d in _loop(c, base_c, False)}
        shapes |= {(sh, sw, min(base_c, c)) for sh, sw in both}
    return shapes


def plan_cascade(first: PassShape, end: PassShape, hw: VariantHardware, sram_bytes: int) -> list[PassFigures]:
    """Two passes in one cascade, the second ending it (``end.cascade_end``): the cheapest pair by the metric.

    GenerateContinueSectionStripeInfos: the end reads the first pass's output buffer at its full depth. A whole
    tensor there gives a convolution output stripes as deep as the OGs (a depthwise one keeps the depth); a
    buffer in stripes of the plane gives it the same stripes, at full depth. The first pass writes a whole-tensor
    buffer when its stripes are whole or split in height only (StripeGenerator: mceOutputHeightOnly; a width split
    writes its buffer in stripes); a height split can write either, and on a tie the striped buffer wins (the
    stripe infos are an ordered set, the smaller output buffer stripe first, and the combiner keeps the first best).
    """
    h, w, c = end.mce_out_hwc
    fh, fw, fc = first.mce_out_hwc
    depth = c if end.mce is not Mce.CONV else min(c, _rup(hw.output_channels_per_cycle, 16))
    # A pass that begins a cascade keeps its whole depth: the stripe generator splits the depth of a depthwise
    # (or identity) pass only when it stands alone (StripeGenerator::GenerateStripes, CascadeType::Lonely)
    whole = {(rows, cols, d) for block in PLE_BLOCKS[first.ple] for rows, cols, d in _stripe_shapes(first, block, hw)
             if d == fc}
    options = []
    for rows, cols, d in sorted(s for s in whole if s[:2] != (fh, fw)):
        end_stripe = (h if rows >= fh else _cdiv(rows * h, fh), w if cols >= fw else _cdiv(cols * w, fw), c)
        options.append((plan_pass(first, hw, sram_bytes, only={(rows, cols, d)}),
                        plan_pass(end, hw, sram_bytes, only={end_stripe})))
    whole_buffer = {s for s in whole if s[1] == fw}
    options.append((plan_pass(first, hw, sram_bytes, only=whole_buffer),
                    plan_pass(end, hw, sram_bytes, only={(h, w, depth)})))
    return list(min(options, key=lambda o: o[0].metric + o[1].metric))


FCAF_CELLS_HWC = ((8, 8, 32), (8, 16, 16))  # g_FcafDeepCellShape, g_FcafWideCellShape
FCAF_MIN_SRAMS = 16  # Compiler.cpp turns the compressed formats off on configurations with fewer SRAMs


def dma_chunks(stripe_hwc: tuple[int, int, int], tensor_hwc: tuple[int, int, int], hw: VariantHardware,
               output: bool) -> int:
    """DMA transfers per stripe of an intermediate DRAM tensor (AccountForDmaChunking): one when a compressed
    format (FCAF) fits the stripes, else NHWCB's: a stripe of part of the depth moves brick column by brick column
    (an output one brick group deep strides in one go), one of part of the width brick row by brick row."""
    splits = [_cdiv(t, st) > 1 for st, t in zip(stripe_hwc, tensor_hwc)]
    # An input slot whose width would grow over 10% to whole FCAF_WIDE cells forbids that format (PartUtils.cpp)
    wide_ok = output or _rup(stripe_hwc[1], 16) < 1.1 * stripe_hwc[1]
    if hw.engines * hw.emcs_per_engine >= FCAF_MIN_SRAMS and any(
            all(not split or st % cell == 0 for st, cell, split in zip(stripe_hwc, cells, splits)) and ok
            for cells, ok in zip(FCAF_CELLS_HWC, (True, wide_ok))):
        return 1
    partial_depth = splits[2] and not (output and stripe_hwc[2] <= 16)
    rows = _cdiv(stripe_hwc[0], BRICK_HW) if partial_depth or splits[1] else 1
    return rows * (_cdiv(stripe_hwc[1], BRICK_HW) if partial_depth else 1)


def plan_blocks(s: PassShape, winograd: bool) -> tuple[tuple[int, int], ...]:
    """The block configurations a plan of the pass may have: its PLE kernel's; a cascade's end 16x16; Winograd's
    accumulators limit the block (GetMceCycleCountWinograd's caller)."""
    if winograd:
        limit = ACCUMULATORS_PER_OG // (4 if min(s.kernel_hw) > 1 else 2)
        return tuple(b for b in BLOCKS if b[0] * b[1] <= limit and b in PLE_BLOCKS[s.ple])
    return tuple(b for b in BLOCKS if b in PLE_BLOCKS[s.ple] and not (s.cascade_end and b != (16, 16)))


def plan_pass(s: PassShape, hw: VariantHardware, sram_bytes: int, winograd: bool = False,
              only: set[tuple[int, int, int]] | None = None) -> PassFigures:
    """The cheapest plan of the pass, by Arm's cost model, among those whose stripes fit the SRAM
    (``winograd``: a convolution run as Winograd, whose weights ``s.weight_codes`` are encoded for it;
    ``only``: the MCE output stripes (height, width, depth) it may have, where something else decided them).

    A stream whose tile holds two stripes overlaps all but its first (input, weights) or last
    (output) stripe with compute; a plan that fits only with one stripe per tile overlaps nothing.
    """
    ic = s.in_hwc[2]
    # OFMs encoded in parallel streams: one per output group (HWIO), or per SRAM (HWIM, depthwise)
    parallel = hw.engines * hw.emcs_per_engine if s.mce is Mce.DEPTHWISE else hw.output_channels_per_cycle
    # Depthwise and PLE-only passes read input channel c for output channel c: a depth split splits the input
    channelwise = s.mce in (Mce.DEPTHWISE, Mce.NONE)
    blocks = plan_blocks(s, winograd)
    packed: dict[int, int] = {}
    plans: list[tuple[bool, PassFigures]] = []  # (fits the SRAM, figures)
    for block in blocks:
        mce = 0 if s.mce is Mce.NONE else (
            mce_winograd(hw, s.kernel_hw, ic, s.mce_out_hwc, block) if winograd
            else mce_direct(hw, s.mce, s.kernel_hw, ic // 64 if s.mce is Mce.FULLY_CONNECTED else ic, s.mce_out_hwc))
        for rows, cols, depth in (only if only is not None else _stripe_shapes(s, block, hw)):
            ple = ple_cycles(hw, s.ple, s.mce_out_hwc, s.out_hwc, block, block_multiplier(s.ple, block, cols))
            plans += _priced(s, hw, sram_bytes, rows, cols, depth, block, mce, ple, parallel, channelwise, packed,
                             winograd)
    fitting = [f for fits, f in plans if fits] or [f for _, f in plans]  # none fits: still answer
    # Ties go to the plan the library meets first: its stripe infos sit in ordered sets, the smallest stripe first
    return min(fitting, key=lambda f: (f.metric, f.stripe_hwc, f.block))


def _stripe_bytes(tensor_hwc: tuple[int, int, int], stripe_hwc: tuple[int, int, int], bricks: bool) -> int:
    """One stripe's bytes as the DMA moves them: the stripe within the tensor (in whole bricks for NHWCB)."""
    h, w, c = (min(_rup(t, BRICK_HW) if bricks and i < 2 else t, st) for i, (t, st) in
               enumerate(zip(tensor_hwc, stripe_hwc)))
    return (_rup(h, BRICK_HW) * _rup(w, BRICK_HW) if bricks else h * w) * c


def _priced(s: PassShape, hw: VariantHardware, sram_bytes: int, rows: int, cols: int, depth: int,
            block: tuple[int, int], mce: int, ple: int, parallel: int, channelwise: bool, packed: dict[int, int],
            winograd: bool) -> list[tuple[bool, PassFigures]]:
    ih, iw, ic = s.in_hwc
    oh, ow, oc = s.out_hwc
    mh, mw, mc = s.mce_out_hwc
    kh, kw = s.kernel_hw
    n_rows, n_cols, n_depth = _cdiv(mh, rows), _cdiv(mw, cols), _cdiv(mc, depth)
    n_space = n_rows * n_cols
    # The encoder's stripe depth (CreateStripe): a split (and a fully connected layer's FullyConnectedPart) rounds
    # up to the OGs (SRAMs for depthwise), and its empty streams are padded too; a convolution's whole depth
    # rounds up to a brick group, one stream per OFM up to the OGs
    whole = depth >= mc and s.mce is not Mce.FULLY_CONNECTED
    stripe_depth = _rup(mc, 16) if whole else _rup(depth, parallel)
    if s.weight_codes and stripe_depth not in packed:
        packed[stripe_depth] = packed_bytes(list(s.weight_codes), stripe_depth, parallel, s.per_channel)
    w_bytes = packed.get(stripe_depth, 0)
    split_input = channelwise and n_depth > 1
    in_rows = min(ih, _cdiv(rows * ih, mh) + kh - 1)
    in_cols = min(iw, _cdiv(cols * iw, mw) + kw - 1)
    in_stripe = _rup(in_rows, BRICK_HW) * _rup(in_cols, BRICK_HW) * _rup(min(depth, ic) if split_input else ic, 16)
    w_stripe = w_bytes // n_depth if w_bytes else 0
    # The PLE's output stripe is its input stripe times the kernel's shape multiplier (FusedPlePart.cpp: the
    # interleave's depth x4)
    out_depth = min(_cdiv(depth * oc, mc), oc)
    out_stripe = (_rup(_cdiv(rows * oh, mh), BRICK_HW) * _rup(_cdiv(cols * ow, mw), BRICK_HW)
                  * _rup(out_depth, 16))
    n_in = n_space * (n_depth if split_input else 1) * s.inputs
    n_out = n_space * n_depth
    bricked = n_depth > 1 or n_cols > 1  # NHWCB in DRAM: whole 8x8 bricks
    in_bytes = ((_rup(ih, BRICK_HW) * _rup(iw, BRICK_HW) if split_input or n_cols > 1 else ih * iw) * ic
                * s.inputs) if s.input_in_dram else 0
    if s.input_interleaved and s.input_in_dram:
        in_bytes = _rup(_cdiv(ih, 2), BRICK_HW) * _rup(_cdiv(iw, 2), BRICK_HW) * ic * 4
    bricked = bricked or s.output_bricked
    out_bytes = ((_rup(oh, BRICK_HW) * _rup(ow, BRICK_HW) if bricked else oh * ow) * oc) if s.output_in_dram else 0
    # What the compiler minimises (CalculateMetric) differs from the figures it reports (and ``cycles``): the MCE and
    # PLE pay per-stripe overheads, and the DRAM side is the temporary one its search assumes (NHWCB or compressed,
    # in whole bricks, whose partial stripes the DMA moves in chunks)
    n_mce = n_space * n_depth  # the input depth is never split here
    mce_metric = max(mce + n_mce * STRIPE_OVERHEAD_CYCLES, STRIPE_MIN_CYCLES * n_mce) if s.mce is not Mce.NONE else 0
    ple_metric = max(ple + n_out * s.ple.stripe_overhead_cycles, STRIPE_MIN_CYCLES * n_out)
    in_stripe_hwc = (min(_rup(in_rows, BRICK_HW), _rup(ih, BRICK_HW)), min(_rup(in_cols, BRICK_HW), _rup(iw, BRICK_HW)),
                     min(depth, ic) if split_input else ic)
    out_stripe_hwc = (min(_rup(_cdiv(rows * oh, mh), BRICK_HW), _rup(oh, BRICK_HW)),
                      min(_rup(_cdiv(cols * ow, mw), BRICK_HW), _rup(ow, BRICK_HW)), out_depth)
    in_bytes_m = max(in_bytes, _rup(ih, BRICK_HW) * _rup(iw, BRICK_HW) * ic * s.inputs) if s.input_in_dram else 0
    out_bytes_m = _rup(oh, BRICK_HW) * _rup(ow, BRICK_HW) * oc if s.output_in_dram else 0
    # GetInputStats/GetOutputStats: the DMA waits for whole stripes (a partial last one counts in full); the
    # metric's temporary DRAM tensors are in bricks
    in_stripe_bytes = partial(_stripe_bytes, (ih, iw, ic), (_cdiv(rows * ih, mh), _cdiv(cols * iw, mw),
                                                            depth if split_input else ic))
    in_first, in_first_m = (s.inputs * in_stripe_bytes(b) for b in (split_input or n_cols > 1 or s.input_interleaved,
                                                                     True))
    out_last, out_last_m = (_stripe_bytes((oh, ow, oc), out_stripe_hwc, b) for b in (bricked, True))
    n_in_m = n_in * dma_chunks(in_stripe_hwc, s.in_hwc, hw, output=False)
    n_out_m = n_out * dma_chunks(out_stripe_hwc, s.out_hwc, hw, output=True)
    out = []
    for double in (True, False):
        need = (in_stripe * s.inputs * (2 if double and n_in > s.inputs else 1)
                + w_stripe * (2 if double and n_depth > 1 else 1) + out_stripe * (2 if double and n_out > 1 else 1))
        # Compute starts once the first input stripe is in, and its neighbour too when the kernel reaches into it
        lead = 2 if (kh > 1 and n_rows > 1) or (kw > 1 and n_cols > 1) else 1
        first_in = min(lead * in_first, in_bytes) if double and n_in > s.inputs else in_bytes
        first_w = w_bytes / n_depth if double and n_depth > 1 else w_bytes
        last_out = min(out_last, out_bytes) if double and n_out > 1 else out_bytes
        i_par, i_non = stream_cycles(in_bytes, first_in, n_in)
        w_par, w_non = stream_cycles(w_bytes, first_w, n_depth)
        o_par, o_non = stream_cycles(out_bytes, last_out, n_out)
        cycles = i_non + w_non + o_non + max(i_par + w_par, o_par, mce, ple)
        first_in = min(lead * in_first_m, in_bytes_m) if double and n_in > s.inputs else in_bytes_m
        last_out = min(out_last_m, out_bytes_m) if double and n_out > 1 else out_bytes_m
        i_par, i_non = stream_cycles(in_bytes_m, first_in, n_in_m)
        o_par, o_non = stream_cycles(out_bytes_m, last_out, n_out_m)
        metric = i_non + w_non + o_non + max(i_par + w_par, o_par, mce_metric, ple_metric)
        out.append((need <= sram_bytes, PassFigures(cycles, mce, ple, in_bytes + w_bytes + out_bytes, w_bytes,
                                                    winograd, need, (n_space, n_depth), block, metric,
                                                    (rows, cols, depth))))
    return out
