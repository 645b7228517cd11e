"""The size of Ethos-N78 encoded weights, as Arm's support library's encoder chooses and packs them.

A re-derivation, in numpy, of the sizes ``driver/support_library/src/WeightEncoder.cpp``
(driver stack 25.03) produces; it writes no bitstream. Per output channel (OFM) the encoder
lays the weights out in the order the MAC engine reads them (input channels in slices of
engines x IGs, zero weights where a slice or a sub-kernel is padded), then picks, from that
OFM's symbol frequencies, a palette of up to 32 repeated values, a Golomb-Rice divisor (or
none) and run-length coding of zeros, whichever costs fewest bits. Each OFM carries a
header (its bias and requantisation, 79 bits with per-channel scales) and a payload header
with the palette when it changed. The OFMs of a weight stripe are split into one stream per
OFM processed in parallel; every stream is padded to the longest one, rounded to 16 bytes.

What the compiler's plan decides (how many OFMs one weight stripe holds, and whether a
convolution runs as Winograd) is given by the caller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ethos_n_variants import VariantHardware

OFM_RELOAD_BITS = 16 + 6 + 8  # scale, shift, zero point: sent again when they change (always when per channel)
OFM_HEADER_BITS = 16 + 32 + 1 + OFM_RELOAD_BITS  # stream length, the bias of int8 weights, reload flag
PAYLOAD_HEADER_BITS = 17 + 1
COMPRESSION_PARAMS_BITS = 3 + 3 + 1 + 5 + 1  # zdiv, wdiv, truncation, weight offset, palette reload
PALETTE_HEADER_BITS = 5 + 3
DMA_ALIGNMENT_BYTES = 16
FC_CHANNEL_MULTIPLE = 1024  # g_WeightsChannelVecProd: fully connected inputs are padded to it
MAX_PALETTE = 32
MAX_SYMBOL = 511
UNCOMPRESSED = 7  # WDivisor::UNCOMPRESSED
RLE_DISABLED = 7  # ZDivisor::RLE_DISABLED


def _bit_width(value: int, minimum: int) -> int:
    """CalcBitWidth: the smallest width >= minimum holding value."""
    width = minimum
    while (1 << width) <= value:
        width += 1
    return width


def _symbols(weights: np.ndarray) -> np.ndarray:
    """WeightToSymbol: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ..."""
    w = weights.astype(np.int32)
    return (np.abs(w) << 1) - (w < 0)


def _grc(symbols: np.ndarray, freqs: np.ndarray, uncompressed_bits: int, slice3d4: int) -> tuple[int, int, bool]:
    """FindGRCParams: (bits, divisor, truncated) of the cheapest Golomb-Rice divisor 0..5, or UNCOMPRESSED."""
    min_w, max_w = _bit_width(int(symbols.min()), 2), _bit_width(int(symbols.max()), 1)
    start = max(max_w - 5 if max_w > 5 else 0, min(5, min_w - 2))
    divisors = np.arange(start, min(5, max_w - 1) + 1)
    best = (uncompressed_bits, UNCOMPRESSED, False)
    if divisors.size == 0:
        return best
    q = symbols[None, :] >> divisors[:, None]  # [divisor, symbol]
    qmax = int(symbols.max()) >> divisors  # the largest quotient per divisor
    total = int(freqs.sum())
    if symbols.size <= 3 and (qmax < 3).any():  # truncated unary codes: at most three symbols, quotients below 3
        truncate = qmax < 3
        quots = np.where(truncate, (np.where(q > 0, 2, 1) * freqs).sum(axis=1), ((q + 1) * freqs).sum(axis=1))
        unary1 = np.where(truncate, ((q > 0) * freqs).sum(axis=1), (((q + 1) // 2) * freqs).sum(axis=1))
    else:
        truncate = np.zeros(divisors.size, bool)
        quots = q @ freqs + total
        unary1 = ((q + 1) // 2) @ freqs
    bits = -(-(quots - unary1) // slice3d4) * slice3d4 + unary1 + divisors * total
    bits = np.where(qmax > 31, np.iinfo(np.int64).max, bits)
    i = int(np.argmin(bits))
    if bits[i] < best[0]:
        best = (int(bits[i]), int(divisors[i]), bool(truncate[i]))
    return best


def _rle(groups: np.ndarray, hw: VariantHardware) -> tuple[int, int]:
    """FindRLEParams: (bits, divisor) of zero runs coded with the cheapest divisor 0..3."""
    slices = hw.input_channels_per_cycle
    min_w, max_w = _bit_width(int(groups.min()), 2), _bit_width(int(groups.max()), 1)
    best = (1 << 62, 0)
    for i in range(min(3, min_w - 2), min(3, max_w - 1) + 1):
        pack = (3 * slices) // 4 if i < 3 else slices // 2
        bits = -(-int(np.sum((groups >> i) + 1)) // pack) * pack + i * groups.size
        best = min(best, (bits, i))
    return best


def _palette(symbols: np.ndarray, freqs: np.ndarray, offset_if_all: int) -> tuple[int, int, int, int] | None:
    """FindPaletteParams: (palette size, palette bits, weight offset, values in it), or None when none pays.

    ``symbols`` are sorted by falling frequency. A palette of one repeated non-zero value is padded
    with a zero entry (size 2, one value).
    """
    repeated = int(np.argmin(freqs > 1)) if freqs[-1] == 1 else freqs.size
    size = min(repeated, MAX_PALETTE)
    if size == 0:
        return None
    padded = False
    if size < 2:
        if symbols[0] > 0 and freqs[0] > 2:
            padded, size = True, 2
        else:
            return None
    range_left = MAX_SYMBOL - size
    offset = 0
    while True:
        size = min(size, range_left)
        unpadded = size - 1 if padded else size
        if unpadded == symbols.size:
            offset, range_left = offset_if_all, MAX_SYMBOL
        else:
            outside = symbols[unpadded:]
            offset = min(int(outside.min()), 31)
            range_left = MAX_SYMBOL - (int(outside.max()) - offset)
        if not (size > 2 and size > range_left):
            break
    if size < 2:
        return None
    unpadded = size - 1 if padded else size
    magnitude = (int(symbols[:unpadded].max()) + 1) >> 1
    return size, _bit_width(magnitude, 2) + (magnitude > 1) - 2, offset, unpadded


@dataclass(frozen=True)
class OfmCode:
    """One OFM's encoding: its payload and the parameters the next OFM of its stream may reuse."""

    payload_bits: int  # the weight symbols and zero runs
    selection_bits: int  # the encoder's own cost figure, palette included (what it minimises)
    params: tuple[int, int, bool, int]  # zero-run divisor, weight divisor, truncation, weight offset
    palette: tuple[int, ...]  # palette symbols in order (empty: none)
    palette_bits: int


def _code(symbols: np.ndarray, freqs: np.ndarray, rle: int | None, zero_bits: int, hw: VariantHardware) -> OfmCode:
    """One pass of FindWeightCompressionParams: without (rle None) or with run-length coded zeros."""
    palette = _palette(symbols, freqs, 0 if rle is None else 1)
    plain_offset = min(int(symbols.min()), 31)
    plain = symbols - plain_offset
    if palette is None:
        size, bits, offset, values = 0, 0, plain_offset, 0
        coded = no_palette = plain
    else:
        size, bits, offset, values = palette
        coded = symbols + size - offset
        coded[:values] = np.arange(values)
        no_palette = plain if values != symbols.size else None
    basis = coded if no_palette is None else no_palette
    width = _bit_width(int(basis.max()), 2)
    count = int(freqs.sum())
    cost, wdiv, truncate = _grc(coded, freqs, count * width, (3 * hw.input_channels_per_cycle) // 4)
    payload = cost
    palette_symbols = tuple(int(v) for v in symbols[:values]) + (0,) * (size - values)
    if wdiv == UNCOMPRESSED:
        if no_palette is not None or size == 0:  # the palette is dropped: plain offset symbols of their width
            size, bits, offset, palette_symbols = 0, width - 2, plain_offset, ()
            payload = count * width
        else:  # palette indices of their exact width (the cost figure assumes at least 2 bits)
            payload = count * _bit_width(size - 1, 1)
    zdiv = RLE_DISABLED if rle is None else rle
    selection = cost + zero_bits + (bits + 2) * len(palette_symbols)
    return OfmCode(payload + zero_bits, selection, (zdiv, wdiv, truncate, offset), palette_symbols, bits)


def ofm_code(stream: np.ndarray, zero_point: int, hw: VariantHardware) -> OfmCode:
    """The encoding Arm's encoder picks for one OFM's stream (its raw weights in the engine's order)."""
    symbols = _symbols(stream.astype(np.int32) - zero_point)
    counts = np.bincount(symbols, minlength=1)
    present = np.flatnonzero(counts)
    order = np.lexsort((-present, -counts[present]))  # falling frequency, then the larger symbol first
    sym, freq = present[order], counts[present][order]
    best = _code(sym, freq, None, 0, hw)
    if counts[0]:
        nonzero = np.flatnonzero(symbols)
        groups = np.diff(np.concatenate(([-1], nonzero, [symbols.size]))) - 1
        zero_bits, zdiv = _rle(groups, hw)
        keep = sym != 0
        if keep.any():
            with_rle = _code(sym[keep], freq[keep], zdiv, zero_bits, hw)
        else:
            with_rle = OfmCode(zero_bits, zero_bits, (zdiv, 0, False, 0), (), 0)
        best = min(best, with_rle, key=lambda c: c.selection_bits)
    return best


def ofm_codes(streams: np.ndarray, zero_point: int, hw: VariantHardware) -> list[OfmCode]:
    """``ofm_code`` of every row; rows with the same values in another order and no zeros share one."""
    memo: dict[bytes, OfmCode] = {}
    out = []
    for row in streams:
        key = np.sort(row).tobytes() if not np.any(row == zero_point) else row.tobytes()
        code = memo.get(key)
        if code is None:
            code = memo[key] = ofm_code(row, zero_point, hw)
        out.append(code)
    return out


def _ofm_bits(code: OfmCode, prev: OfmCode | None, ofm_reload: bool) -> int:
    """One OFM in its stream: headers (reloads only what changed since ``prev``) and payload."""
    bits = OFM_HEADER_BITS if ofm_reload else OFM_HEADER_BITS - OFM_RELOAD_BITS
    palette_reload = prev is None or code.palette != prev.palette or code.palette_bits != prev.palette_bits
    if palette_reload or code.params != prev.params:
        bits += COMPRESSION_PARAMS_BITS
        if palette_reload:
            bits += PALETTE_HEADER_BITS + len(code.palette) * (code.palette_bits + 2)
    return bits + PAYLOAD_HEADER_BITS + code.payload_bits


def packed_bytes(codes: list[OfmCode], ofms_per_stripe: int, parallel: int, per_channel: bool) -> int:
    """Streams per (stripe, OFM processed in parallel), each padded to the longest, 16-byte aligned.

    An OFM reuses its stream predecessor's parameters where they match; each stream starts afresh
    in every stripe of more OFMs than streams (EncodeOfm's "initial parameters").
    """
    lanes = min(parallel, ofms_per_stripe)
    prev: list[OfmCode | None] = [None] * lanes
    streams: list[int] = []
    for start in range(0, len(codes), ofms_per_stripe):
        if ofms_per_stripe > lanes:
            prev = [None] * lanes
        totals = [0] * lanes
        for j, code in enumerate(codes[start:start + ofms_per_stripe]):
            g = j % lanes
            first = start + j < lanes
            totals[g] += _ofm_bits(code, prev[g], per_channel or first)
            prev[g] = code
        streams += totals
    longest = max(math.ceil(b / 8) for b in streams)
    return -(-longest // DMA_ALIGNMENT_BYTES) * DMA_ALIGNMENT_BYTES * len(streams)


# --------------------------------------------------------------------------- the engine's weight order


def _submaps(kh: int, kw: int, sy: int, sx: int, pad_top: int, pad_left: int) -> list[tuple[int, int, int, int]]:
    """GetSubmapFilters: (row offset, column offset, height, width) per stride phase."""
    out = []
    for y in range(sy):
        oy = (y + pad_top) % sy
        for x in range(sx):
            ox = (x + pad_left) % sx
            h = kh // sy if oy == sy - 1 else -(-kh // sy)
            w = kw // sx if ox == sx - 1 else -(-kw // sx)
            out.append((oy, ox, h, w))
    return out


def direct_streams(values: np.ndarray, zero_point: int, stride_hw: tuple[int, int], padding_tl: tuple[int, int],
                   hw: VariantHardware) -> np.ndarray:
    """[OFM, stream] of an HWIO convolution run directly: slices of engines x IGs input channels (the last
    one padded with zero weights), within a slice each stride phase's sub-kernel, row by row."""
    kh, kw, cin, cout = values.shape
    sy, sx = stride_hw
    par = hw.input_channels_per_cycle
    padded = -(-cin // par) * par
    w = np.full((kh, kw, padded, cout), zero_point, dtype=np.int16)
    w[:, :, :cin, :] = values
    subs = _submaps(kh, kw, sy, sx, padding_tl[0], padding_tl[1])
    pieces = []
    for start in range(0, padded, par):
        in_slice = min(par, cin - start)
        for n, (oy, ox, h, wd) in enumerate(subs):
            channels = in_slice if n == len(subs) - 1 else par
            if h == 0 or wd == 0:
                pieces.append(np.full((channels, cout), zero_point, dtype=np.int16))
                continue
            sub = w[oy::sy, ox::sx][:h, :wd, start:start + channels, :]  # rows, columns, channels, OFM
            pieces.append(sub.reshape(-1, cout))
    return np.concatenate(pieces).T


def winograd_streams(values: np.ndarray, zero_point: int) -> np.ndarray:
    """[OFM, stream] of an HWIO convolution run as Winograd: the kernel in 3x3 tiles (zero-padded), each tile
    input channel by input channel."""
    kh, kw, cin, cout = values.shape
    th, tw = (3 if kh > 1 else 1), (3 if kw > 1 else 1)
    ph, pw = -(-kh // th) * th, -(-kw // tw) * tw
    w = np.full((ph, pw, cin, cout), zero_point, dtype=np.int16)
    w[:kh, :kw] = values
    tiles = [w[y:y + th, x:x + tw].transpose(2, 0, 1, 3).reshape(-1, cout)
             for y in range(0, ph, th) for x in range(0, pw, tw)]
    return np.concatenate(tiles).T


def depthwise_streams(values: np.ndarray, stride_hw: tuple[int, int], padding_tl: tuple[int, int]) -> np.ndarray:
    """[OFM, stream] of HWIM depthwise weights: per channel, each stride phase's sub-kernel row by row."""
    kh, kw, cin, mult = values.shape
    sy, sx = stride_hw
    w = values.reshape(kh, kw, cin * mult)
    pieces = [w[oy::sy, ox::sx][:h, :wd].reshape(-1, cin * mult)
              for oy, ox, h, wd in _submaps(kh, kw, sy, sx, padding_tl[0], padding_tl[1]) if h and wd]
    return np.concatenate(pieces).T


def fully_connected_streams(values: np.ndarray, zero_point: int, hw: VariantHardware) -> np.ndarray:
    """[OFM, stream] of fully connected weights: inputs padded to 1024, shuffled within each 1024 as the
    engine's SRAM bricks read them (GetRawOfmStream)."""
    cin, cout = values.shape[2], values.shape[3]
    padded = -(-cin // FC_CHANNEL_MULTIPLE) * FC_CHANNEL_MULTIPLE
    srams = hw.engines * hw.emcs_per_engine
    idx = np.arange(padded)
    brick, in_brick = idx // FC_CHANNEL_MULTIPLE, idx % FC_CHANNEL_MULTIPLE
    qsize = 16 * srams
    q = in_brick // qsize
    q = (q % 4) * (16 // srams) + q // 4
    rest = in_brick % qsize
    raw = brick * FC_CHANNEL_MULTIPLE + q * qsize + (rest % srams) * 16 + rest // srams
    w = np.full((padded, cout), zero_point, dtype=np.int16)
    w[:cin] = values.reshape(cin, cout)
    return w[raw].T
