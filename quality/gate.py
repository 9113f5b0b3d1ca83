"""The SID build gate: FORGE's training-free metrics of a build against thresholds, as a pure function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    """Limits of the gate. Per-level limits apply to the model's raw codes: a level whose perplexity falls
    below max(`min_level_perplexity`, `min_level_perplexity_share` x its size), or that uses fewer than
    `min_level_utilisation` of its codes, has collapsed."""

    max_gini: float = 0.95
    max_collision_rate: float = 0.95
    min_level_perplexity: float = 2.0
    min_level_perplexity_share: float = 0.1
    min_level_utilisation: float = 0.25
    min_hitrate_share_of_raw: float = 0.3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"gate threshold {name} must not be negative, got {value}")

    def perplexity_floors(self, sizes: Sequence[int]) -> list[float]:
        """The lowest raw perplexity each level may have: max(min_level_perplexity, share x its size)."""
        return [max(self.min_level_perplexity, self.min_level_perplexity_share * s) for s in sizes]


@dataclass(frozen=True)
class GateResult:
    """Each check's outcome (keyed by its readable rule) and the limits drawn in the build report."""

    checks: dict[str, bool]
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(self.checks.values())

    @property
    def failed(self) -> list[str]:
        """The rules that failed."""
        return [rule for rule, ok in self.checks.items() if not ok]


def evaluate(metrics: Mapping[str, Any], thresholds: Thresholds) -> GateResult:
    """Which of the gate's checks `metrics` (of `quality.evaluate.evaluate_build`) pass."""
    t = thresholds
    floors = t.perplexity_floors(metrics["sizes"])
    min_hitrate = t.min_hitrate_share_of_raw * metrics["embedding_hitrate_raw"]
    checks = {
        f"gini <= {t.max_gini}": metrics["gini"] <= t.max_gini,
        f"collision_rate <= {t.max_collision_rate}": metrics["collision_rate"] <= t.max_collision_rate,
        f"every level's raw perplexity >= max({t.min_level_perplexity}, "
        f"{t.min_level_perplexity_share} x its size)": all(
            p >= f for p, f in zip(metrics["perplexity_per_level"], floors, strict=True)
        ),
        f"every level's raw utilisation >= {t.min_level_utilisation}": min(metrics["utilisation_per_level"])
        >= t.min_level_utilisation,
        f"embedding_hitrate >= {t.min_hitrate_share_of_raw} x raw": metrics["embedding_hitrate"] >= min_hitrate,
    }
    limits = {
        "max_gini": t.max_gini,
        "max_collision_rate": t.max_collision_rate,
        "perplexity_floor": floors,
        "min_level_utilisation": t.min_level_utilisation,
        "min_hitrate": min_hitrate,
    }
    return GateResult(checks, limits)
