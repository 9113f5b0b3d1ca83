"""The generative-retrieval probe: it learns a planted next-SID rule, its beam search emits only valid SIDs, a
SID space with structure beats the same SIDs dealt at random, and the same seed gives the same figures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from quality.gr_probe import ProbeConfig, SidSpace, examples_of, generate, hit_rates, probe, ranking, train

SIZES = [4, 4, 4]
# 60 epochs: at 30 the planted rule was learnt or not depending on the number of CPU threads (0.75 on one)
FAST = ProbeConfig(width=32, layers=1, history_items=2, epochs=60, batch_size=64, learning_rate=1e-2, beam=16)


def _space(items: int = 64) -> SidSpace:
    """`items` items, each with its own SID (codes in the order of the item number)."""
    codes = np.array(list(itertools.product(*(range(s) for s in SIZES)))[:items])
    return SidSpace([f"i{n:03d}" for n in range(items)], codes, SIZES)


def _rows(space: SidSpace, histories: list[list[int]], targets: list[int]) -> list[dict]:
    """Published-split rows: the history's SID tokens and item ids, the target item ids."""
    return [
        {
            "history": space.history_tokens([f"i{n:03d}" for n in history]),
            "history_items": [f"i{n:03d}" for n in history],
            "target_items": [f"i{target:03d}"],
        }
        for history, target in zip(histories, targets, strict=True)
    ]


def _planted(space: SidSpace, n: int, seed: int, follow) -> list[dict]:
    """`n` examples: random histories of 1 to 4 items, the target a function of the last one."""
    rng = np.random.default_rng(seed)
    histories = [rng.integers(0, len(space.item_ids), rng.integers(1, 5)).tolist() for _ in range(n)]
    return _rows(space, histories, [follow(h[-1], rng) for h in histories])


@pytest.mark.slow
def test_the_probe_learns_a_planted_next_sid_rule():
    space = _space()
    rule = lambda last, _rng: (7 * last + 3) % 64  # noqa: E731
    model = train(examples_of(_planted(space, 640, 1, rule), space, from_items=False), space, FAST)
    test = examples_of(_planted(space, 200, 2, rule), space, from_items=False)
    ranked = [ranking(sids, space, 10) for sids in generate(model, test, space, FAST)]
    figures = hit_rates(ranked, [e.targets for e in test], [1, 10], "")
    assert figures["probe_hr_at_1"] > 0.9
    assert figures["probe_hr_at_10"] >= figures["probe_hr_at_1"]


def test_beam_search_emits_only_sids_of_the_build():
    sparse = np.array([c for c in itertools.product(*(range(s) for s in SIZES)) if sum(c) % 3 == 0])
    space = SidSpace([f"i{n:03d}" for n in range(len(sparse))], sparse, SIZES)
    examples = examples_of(_rows(space, [[0, 1], [2], [5, 6, 7]], [3, 4, 8]), space, from_items=False)
    model = train(examples, space, ProbeConfig(epochs=1))
    valid = {tuple(t) for t in space.tokens.tolist()}
    for sids in generate(model, examples, space, ProbeConfig(beam=64)):
        assert len(sids) == len(valid) and set(sids) == valid  # a beam wider than the build: every SID, once
    for sids in generate(model, examples, space, ProbeConfig(beam=5)):
        assert len(set(sids)) == 5 and set(sids) <= valid


@pytest.mark.slow
def test_sids_with_structure_beat_the_same_sids_dealt_at_random():
    space = _space()
    same_cluster = lambda last, rng: int(last // 8 * 8 + rng.integers(0, 8))  # noqa: E731
    figures = probe(_planted(space, 640, 4, same_cluster), _planted(space, 200, 5, same_cluster), space, FAST)
    assert figures["probe_hr_at_10"] > 0.8
    assert figures["probe_hr_at_10"] > figures["probe_hr_at_10_random"] + 0.2
    assert figures["probe_hr_at_10"] > figures["probe_hr_at_10_popularity"] + 0.2
    assert figures["probe_test_examples"] == 200


def test_the_same_seed_gives_the_same_figures():
    space = _space()
    rule = lambda last, rng: int((last + rng.integers(0, 3)) % 64)  # noqa: E731
    quick = ProbeConfig(width=16, layers=1, history_items=4, epochs=3, batch_size=64, beam=8)
    train_rows, test_rows = _planted(space, 200, 6, rule), _planted(space, 50, 7, rule)
    first = probe(train_rows, test_rows, space, quick)
    assert probe(train_rows, test_rows, space, quick) == first
    assert probe(train_rows, test_rows, space, ProbeConfig(**{**quick.as_dict(), "seed": 1})) != first
