"""Which tensors between Ethos-N passes stay in SRAM: Arm's section search, over the model's layers.

Arm's combiner (``CombinerDFS.cpp``, ``Combiner::Run``) treats the parts of a network as a list in
topological order and splits it into sections, each a run of consecutive parts: a part alone (its
input from DRAM, its output to DRAM: ``ChooseBestLonelyPlan``) or a cascade that starts a section, continues
it and ends it (``CalculateSectionsOfAllLengths``), whose tensors between its parts stay in SRAM. It keeps
the cheapest split by its metric, a dynamic programme from the last part back (``best[i]``: the
lonely part plus ``best[i + 1]``, or a section of each length from ``i`` plus what follows it). A part
continues or ends a section only when it reads a tensor the section wrote (``ContinueOrEndSection``:
``anyInputSramBuffers``), a section ends only when every tensor it wrote has been read inside it
(``unresolvedOutputs``), and every part's buffers must find room in the SRAM beside the tensors the
section still holds (``AllocateSram``; ``DeallocateUnusedBuffers`` frees a whole tensor once its readers are done).

Here a part is a layer as ``ethos_n.estimate_network`` prices it (a PLE kernel that runs in the pass
before it is part of that pass's layer), priced by the per-pass metric of ``ethos_n_passes``; a tensor
kept in SRAM holds its whole size in bricks (size 0: held in the stripes of its writer's plan, which then stay
allocated), and a layer's own plan needs its stripes beside it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One layer in the combiner's list: the tensors its first pass reads and the one its last pass writes."""

    layer: int
    reads: tuple[int, ...]
    writes: int
    keepable: bool  # its output may stay in SRAM: every reader on the NPU, not a network output, no reshape's
    barrier: bool = False  # not an NPU part that can join a section (off the NPU, a reshape, a lonely-only part)
    blocks: frozenset[tuple[int, int]] = frozenset()  # the block configurations its PLE kernels have


@dataclass(frozen=True)
class Priced:
    metric: float
    sram_bytes: int  # the plan's own stripes


# (part position, input in SRAM, output in SRAM) -> the layer's metric and plan SRAM
Price = Callable[[int, bool, bool], Priced]


def _section(parts: list[Part], start: int, readers: dict[int, set[int]], size: dict[int, int], price: Price,
             sram_bytes: int) -> list[tuple[int, float]]:
    """(last position, metric) of every valid section from ``start`` (two parts or more)."""
    out: list[tuple[int, float]] = []
    position = {p.layer: i for i, p in enumerate(parts)}

    def last_reader(t: int) -> int:
        return max(position.get(r, len(parts)) for r in readers.get(t, {len(parts)}))

    blocks = parts[start].blocks
    for end in range(start + 1, len(parts)):
        written = {p.writes: start + k for k, p in enumerate(parts[start:end])}
        # A part joins only when the section feeds it; a part before the end keeps its output in SRAM; the whole
        # section runs in the block configuration its first plan chose (StartSection), which every PLE kernel in it
        # must have (FusedPlePart::GenerateContinueSectionPlans: PleBlockConfigAllowed)
        blocks = blocks & parts[end].blocks
        if parts[end].barrier or not parts[end - 1].keepable or not any(t in written for t in parts[end].reads) \
                or not blocks:
            break
        # A section ends only when each tensor it wrote has been read inside it
        if any(last_reader(t) > end for t in written):
            continue
        total, overflow, middle_overflow = 0.0, 0, 0
        stripes: dict[int, int] = {}
        for k in range(start, end + 1):
            p = parts[k]
            priced = price(k, all(t in written and written[t] < k for t in p.reads), k < end)
            stripes[k] = priced.sram_bytes
            # The whole tensors the section holds while this part runs: those written before it and read by it or
            # later, and its own output; beside them, the part's own stripes, and those of a part whose output it
            # reads in stripes (size 0: DeallocateUnusedBuffers frees nothing behind an output that is not whole)
            held = sum(size[t] for t, w in written.items() if w < k <= last_reader(t))
            held += size[p.writes] if k < end else 0
            held += sum(stripes[written[t]] for t in p.reads if t in written and written[t] < k and not size[t])
            overflow = max(overflow, held + priced.sram_bytes - sram_bytes)
            middle_overflow = overflow if k < end else middle_overflow
            total += priced.metric
        if middle_overflow > 0:
            break  # a part that cannot continue the section ends every longer one too (ContinueSection: no plans)
        if overflow <= 0:
            out.append((end, total))
    return out


def best_split(parts: list[Part], readers: dict[int, set[int]], size: dict[int, int], price: Price,
               sram_bytes: int) -> list[tuple[int, int]]:
    """The sections (first, last position) of the cheapest split, as Combiner::Run finds it."""
    n = len(parts)
    best: list[tuple[float, list[tuple[int, int]]]] = [(0.0, [])] * (n + 1)
    for i in range(n - 1, -1, -1):
        lonely = 0.0 if parts[i].barrier else price(i, False, False).metric
        choice = (lonely + best[i + 1][0], [(i, i), *best[i + 1][1]])
        if not parts[i].barrier:
            for end, metric in _section(parts, i, readers, size, price, sram_bytes):
                if metric + best[end + 1][0] < choice[0]:
                    choice = (metric + best[end + 1][0], [(i, end), *best[end + 1][1]])
        best[i] = choice
    return best[0][1]
