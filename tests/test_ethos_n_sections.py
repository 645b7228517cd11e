"""Arm's section search (ethos_n_sections.best_split) on hand-priced chains: what it keeps in SRAM and why."""
from __future__ import annotations

from toolchain.targets.ethos_n_sections import Part, Priced, best_split

ANY = frozenset({(16, 16), (8, 8)})


def _price(lonely: float, saved: float, stripes: int = 0):
    """Every part costs ``lonely`` alone, ``saved`` less for each side of it that stays in SRAM."""
    return lambda k, in_sram, out_sram: Priced(lonely - saved * (in_sram + out_sram), stripes)


def _chain(n: int, blocks=ANY) -> list[Part]:
    # part k reads tensor k and writes tensor k + 1
    return [Part(k, (k,), k + 1, True, False, blocks) for k in range(n)]


def _readers(parts: list[Part]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for p in parts:
        for t in p.reads:
            out.setdefault(t, set()).add(p.layer)
    return out


def test_a_chain_that_fits_is_one_section():
    parts = _chain(3)
    size = {t: 100 for t in range(4)}
    assert best_split(parts, _readers(parts), size, _price(10, 3), 1000) == [(0, 2)]


def test_a_tensor_the_sram_cannot_hold_ends_the_section():
    parts = _chain(3)
    size = {0: 100, 1: 100, 2: 900, 3: 100}  # what part 1 writes does not fit beside part 2's stripes
    assert best_split(parts, _readers(parts), size, _price(10, 3, stripes=200), 1000) == [(0, 1), (2, 2)]


def test_parts_without_a_common_block_configuration_cannot_share_a_section():
    parts = [Part(0, (0,), 1, True, False, frozenset({(16, 16)})), Part(1, (1,), 2, True, False, frozenset({(8, 8)}))]
    assert best_split(parts, _readers(parts), {0: 1, 1: 1, 2: 1}, _price(10, 3), 1000) == [(0, 0), (1, 1)]


def test_a_branch_stays_in_sram_only_when_both_readers_are_in_the_section():
    # 0 writes 1, read by 1 and by 2 (an addition of 1's output and 0's)
    parts = [Part(0, (0,), 1, True, False, ANY), Part(1, (1,), 2, True, False, ANY),
             Part(2, (2, 1), 3, True, False, ANY)]
    size = {t: 100 for t in range(4)}
    assert best_split(parts, _readers(parts), size, _price(10, 3), 1000) == [(0, 2)]
    # Without room for 0's output beside 1's, [0, 1] would leave 0's output unread and [0, 2] does not fit
    assert best_split(parts, _readers(parts), {0: 100, 1: 600, 2: 500, 3: 100}, _price(10, 3), 1000) == \
        [(0, 0), (1, 2)]


def test_a_part_the_section_does_not_feed_cannot_join_it():
    parts = [Part(0, (0,), 1, True, False, ANY), Part(1, (5,), 2, True, False, ANY)]
    assert best_split(parts, _readers(parts), {0: 1, 1: 1, 2: 1, 5: 1}, _price(10, 3), 1000) == [(0, 0), (1, 1)]


def test_a_tensor_held_in_stripes_keeps_its_writers_stripes_beside_the_readers():
    parts = _chain(2)
    size = {0: 1, 1: 0, 2: 1}  # what part 0 writes is held in stripes
    assert best_split(parts, _readers(parts), size, _price(10, 3, stripes=600), 1000) == [(0, 0), (1, 1)]
    assert best_split(parts, _readers(parts), size, _price(10, 3, stripes=600), 1200) == [(0, 1)]
