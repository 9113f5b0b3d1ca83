"""A generative-retrieval probe: does a build's SID space train a good recommender?

A small encoder-decoder transformer (plain PyTorch) reads the SID tokens of a history and generates the next
item's SID, one level at a time, trained with teacher forcing on a published version's `train` split. On its
`test` split, beam search constrained to the build's valid SID prefixes generates SIDs in order of probability;
each SID expands to its items (item-id order) and the list is cut at K. HR@K is FORGE's (`algr/calc_hr.py`): the
share of an example's target items among the first K, averaged over examples; NDCG@K discounts the first hit
by its rank. Beside it, in the same run: the same probe on random SIDs (the build's SIDs dealt to the items at
random: same sizes, same group sizes) and the most popular train targets for everyone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from sid_index.codec import offsets, prefix_sets, token_ids, vocabulary_size

MIN_TEST_EXAMPLES = 10  # a probe measured on fewer test examples measures nothing


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's model, training and evaluation settings; `max_examples` caps the test examples evaluated."""

    width: int = 32
    heads: int = 4
    layers: int = 1
    history_items: int = 10
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 3e-3
    beam: int = 100
    ks: tuple[int, ...] = (1, 10, 100)
    seed: int = 0
    device: str = "cpu"
    max_examples: int | None = 1000

    def __post_init__(self) -> None:
        for name in ("width", "heads", "layers", "history_items", "epochs", "batch_size", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"probe setting {name} must be 1 or more (got {getattr(self, name)})")
        if not self.learning_rate > 0:
            raise ValueError(f"probe setting learning_rate must be above 0 (got {self.learning_rate})")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"probe setting ks must list cut-offs of 1 or more (got {self.ks})")
        if self.max_examples is not None and self.max_examples < MIN_TEST_EXAMPLES:
            raise ValueError(
                f"probe setting max_examples must be {MIN_TEST_EXAMPLES} or more (got {self.max_examples}): "
                "fewer test examples measure nothing"
            )

    def as_dict(self) -> dict:
        """Plain dict for reports."""
        return asdict(self)


@dataclass
class Example:
    """One example: the history's SID tokens (levels per item, oldest first) and the target item ids."""

    history: np.ndarray
    targets: list[str]


class SidSpace:
    """A build's SIDs as the probe needs them: each item's codes, each SID's items and the valid prefixes."""

    def __init__(self, item_ids: Sequence[str], codes: np.ndarray, sizes: Sequence[int]):
        if len(item_ids) != len(codes):
            raise ValueError(f"{len(item_ids)} item ids for {len(codes)} code rows")
        self.sizes, self.levels = [int(s) for s in sizes], len(sizes)
        self.vocabulary = vocabulary_size(self.sizes)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.tokens = token_ids(self.codes, self.sizes)
        self.row_of = {item: row for row, item in enumerate(item_ids)}
        order = np.lexsort((np.asarray(item_ids, dtype=object).astype(str), *self.tokens.T[::-1]))
        self.items_of: dict[tuple[int, ...], list[str]] = {}
        for row in order:
            self.items_of.setdefault(tuple(self.tokens[row].tolist()), []).append(item_ids[row])
        self.prefixes = {
            level: torch.from_numpy(keys) for level, keys in prefix_sets(self.tokens, self.vocabulary).items()
        }
        self.item_ids = list(item_ids)

    def shuffled(self, seed: int) -> SidSpace:
        """The same SIDs dealt to the items at random: the floor a SID space without structure gives."""
        rows = np.random.default_rng(seed).permutation(len(self.codes))
        return SidSpace(self.item_ids, self.codes[rows], self.sizes)

    def history_tokens(self, items: Iterable[str]) -> np.ndarray:
        """The SID tokens of `items` that have a SID here, in order."""
        rows = [self.row_of[i] for i in items if i in self.row_of]
        return self.tokens[rows].reshape(-1) if rows else np.zeros(0, dtype=np.int64)


class ProbeModel(nn.Module):
    """Encoder over the history's tokens, decoder over the target SID's tokens (BOS first)."""

    def __init__(self, vocabulary: int, levels: int, config: ProbeConfig):
        super().__init__()
        self.pad, self.bos = vocabulary, vocabulary + 1
        self.embed = nn.Embedding(vocabulary + 2, config.width, padding_idx=self.pad)
        self.position = nn.Embedding(config.history_items * levels + levels + 1, config.width)
        self.transformer = nn.Transformer(
            config.width,
            config.heads,
            config.layers,
            config.layers,
            4 * config.width,
            dropout=0.1,
            batch_first=True,
        )
        self.out = nn.Linear(config.width, vocabulary)

    def _embedded(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.embed(tokens) + self.position(positions)[None]

    def encode(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory of a batch of right-padded histories, and its padding mask."""
        padding = history == self.pad
        return self.transformer.encoder(self._embedded(history), src_key_padding_mask=padding), padding

    def decode(self, memory: torch.Tensor, padding: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Logits of every next token after each position of `prefix` (BOS first)."""
        causal = nn.Transformer.generate_square_subsequent_mask(prefix.shape[1], device=prefix.device)
        hidden = self.transformer.decoder(
            self._embedded(prefix), memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding
        )
        return self.out(hidden)


def examples_of(rows: Iterable[Mapping], space: SidSpace, *, from_items: bool) -> list[Example]:
    """Examples from a published split's rows (`history`, `history_items`, `target_items`): the shards' own SID
    tokens, or with `from_items` the tokens `space` gives the history items. Targets without a SID in `space`
    are left out, and examples with none."""
    out = []
    for row in rows:
        targets = [t for t in row["target_items"] if t in space.row_of]
        if not targets:
            continue
        history = space.history_tokens(row["history_items"]) if from_items else np.asarray(row["history"], np.int64)
        out.append(Example(history, targets))
    return out


def _batch(examples: Sequence[Example], space: SidSpace, config: ProbeConfig, pad: int) -> torch.Tensor:
    """The last `history_items` items of each history, right-padded."""
    keep = config.history_items * space.levels
    histories = [e.history[-keep:] for e in examples]
    out = torch.full((len(examples), max(1, *(len(h) for h in histories))), pad, dtype=torch.long)
    for row, history in enumerate(histories):
        out[row, : len(history)] = torch.from_numpy(history)
    return out


def _level_mask(space: SidSpace) -> torch.Tensor:
    """(levels, vocabulary): the tokens of each level (a level's logits are taken over its own tokens)."""
    mask = torch.zeros(space.levels, space.vocabulary, dtype=torch.bool)
    for level, (start, size) in enumerate(zip(offsets(space.sizes), space.sizes, strict=True)):
        mask[level, start : start + size] = True
    return mask


def train(
    examples: Sequence[Example],
    space: SidSpace,
    config: ProbeConfig,
    progress: Callable[[str, int, int], None] | None = None,
    step: str = "probe: training epochs",
) -> ProbeModel:
    """Train the probe on `examples` to generate the SID of each one's first target (the next item); seeded.
    `progress(step, epochs done, epochs)` is called after each epoch."""
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    model = ProbeModel(space.vocabulary, space.levels, config).to(device)
    pairs = [(e, space.tokens[space.row_of[e.targets[0]]]) for e in examples]
    if not pairs:
        raise ValueError("no training examples with a target item that has a SID in this build")
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    levels = _level_mask(space).to(device)
    rng = np.random.default_rng(config.seed)
    model.train()
    for epoch in range(config.epochs):
        order = rng.permutation(len(pairs))
        for start in range(0, len(pairs), config.batch_size):
            chunk = [pairs[i] for i in order[start : start + config.batch_size]]
            history = _batch([e for e, _ in chunk], space, config, model.pad).to(device)
            target = torch.from_numpy(np.stack([t for _, t in chunk])).to(device)
            prefix = torch.cat([torch.full((len(chunk), 1), model.bos, device=device), target[:, :-1]], dim=1)
            memory, padding = model.encode(history)
            logits = model.decode(memory, padding, prefix).masked_fill(~levels[None], -torch.inf)
            loss = nn.functional.cross_entropy(logits.reshape(-1, space.vocabulary), target.reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if progress:
            progress(step, epoch + 1, config.epochs)
    return model


@torch.no_grad()
def generate(model: ProbeModel, examples: Sequence[Example], space: SidSpace, config: ProbeConfig) -> list[list[tuple]]:
    """For each example, up to `beam` SIDs (token tuples) in order of probability, every prefix of each a prefix
    of some item's SID in `space` (beam search constrained to the valid prefixes)."""
    model.eval()
    device = next(model.parameters()).device
    starts = offsets(space.sizes)
    prefixes = {level: keys.to(device) for level, keys in space.prefixes.items()}
    out: list[list[tuple]] = []
    for first in range(0, len(examples), max(1, config.batch_size // 4)):
        chunk = examples[first : first + max(1, config.batch_size // 4)]
        memory, padding = model.encode(_batch(chunk, space, config, model.pad).to(device))
        n, beams = len(chunk), 1
        prefix = torch.full((n, 1), model.bos, dtype=torch.long, device=device)
        keys = torch.zeros(n, dtype=torch.long, device=device)
        scores = torch.zeros(n, 1, device=device)
        for level, size in enumerate(space.sizes):
            tokens = torch.arange(starts[level], starts[level] + size, device=device)
            logits = model.decode(memory.repeat_interleave(beams, 0), padding.repeat_interleave(beams, 0), prefix)
            logp = torch.log_softmax(logits[:, -1, tokens], dim=-1)
            wanted = keys[:, None] * space.vocabulary + tokens[None]
            at = torch.searchsorted(prefixes[level + 1], wanted).clamp(max=len(prefixes[level + 1]) - 1)
            valid = prefixes[level + 1][at] == wanted
            total = (scores.reshape(-1, 1) + logp.masked_fill(~valid, -torch.inf)).reshape(n, beams * size)
            scores, picked = total.topk(min(config.beam, beams * size), dim=1)
            parent = picked // size + torch.arange(n, device=device)[:, None] * beams
            token = tokens[picked % size]
            prefix = torch.cat([prefix[parent.reshape(-1)], token.reshape(-1, 1)], dim=1)
            keys = keys[parent.reshape(-1)] * space.vocabulary + token.reshape(-1)
            beams = scores.shape[1]
        finite = torch.isfinite(scores).cpu().numpy()
        sids = prefix[:, 1:].reshape(n, beams, space.levels).cpu().numpy()
        out += [
            [tuple(s) for s, ok in zip(row.tolist(), keep, strict=True) if ok]
            for row, keep in zip(sids, finite, strict=True)
        ]
    return out


def ranking(sids: Sequence[tuple], space: SidSpace, k: int) -> list[str]:
    """The first `k` items of the generated SIDs, each SID expanded to its items (item-id order)."""
    items: list[str] = []
    for sid in sids:
        items += space.items_of.get(sid, [])
        if len(items) >= k:
            break
    return items[:k]


def hit_rates(
    ranked: Sequence[Sequence[str]], targets: Sequence[Sequence[str]], ks: Sequence[int], suffix: str
) -> dict:
    """HR@K (FORGE's: the share of an example's targets among its first K items, averaged) and NDCG@K."""
    figures = {}
    for k in ks:
        hits, gains = [], []
        for items, wanted in zip(ranked, targets, strict=True):
            truth = set(wanted)
            top = list(items[:k])
            hits.append(len(truth & set(top)) / len(truth))
            dcg = sum(1 / math.log2(rank + 2) for rank, item in enumerate(top) if item in truth)
            ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(truth), k)))
            gains.append(dcg / ideal)
        figures[f"probe_hr_at_{k}{suffix}"] = float(np.mean(hits)) if hits else 0.0
        figures[f"probe_ndcg_at_{k}{suffix}"] = float(np.mean(gains)) if gains else 0.0
    return figures


def probe_ks(space: SidSpace, config: ProbeConfig) -> list[int]:
    """The K's the probe reports: the configured ones up to the beam and below the catalogue's size."""
    return [k for k in config.ks if k <= config.beam and k < len(space.item_ids)] or [1]


def probe_space(
    train_rows: Sequence[Mapping],
    test_rows: Sequence[Mapping],
    space: SidSpace,
    config: ProbeConfig,
    *,
    from_items: bool = False,
    suffix: str = "",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, float]:
    """HR@K and NDCG@K (names ending in `suffix`) of the probe trained on `train_rows` and evaluated on the first
    `max_examples` of `test_rows`, as `space`'s SIDs: the shards' own history tokens, or with `from_items` the
    tokens `space` gives the history items."""
    ks = probe_ks(space, config)
    step = f"probe{suffix.replace('_', ' ')}: training epochs"
    model = train(examples_of(train_rows, space, from_items=from_items), space, config, progress, step)
    test = examples_of(list(test_rows)[: config.max_examples], space, from_items=from_items)
    ranked = [ranking(g, space, max(ks)) for g in generate(model, test, space, config)]
    return hit_rates(ranked, [e.targets for e in test], ks, suffix)


def probe(
    train_rows: Sequence[Mapping],
    test_rows: Sequence[Mapping],
    space: SidSpace,
    config: ProbeConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, float]:
    """`probe_space`'s figures for the build's SIDs as the shards hold them, for random SIDs (`_random`) and for
    the most popular train targets (`_popularity`), with the number of test examples; `progress` per epoch."""
    test_rows = list(test_rows)[: config.max_examples]
    figures = probe_space(train_rows, test_rows, space, config, progress=progress)
    figures |= probe_space(
        train_rows, test_rows, space.shuffled(config.seed), config, from_items=True, suffix="_random", progress=progress
    )
    ks, test = probe_ks(space, config), examples_of(test_rows, space, from_items=False)
    counts = Counter(t for row in train_rows for t in row["target_items"] if t in space.row_of)
    popular = [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(ks)]]
    figures |= hit_rates([popular] * len(test), [e.targets for e in test], ks, "_popularity")
    return figures | {"probe_test_examples": len(test)}
