"""Decisions of the SID build lifecycle, as pure functions: reuse a build made from the same inputs, refresh the
published build or rebuild, and name a new build."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

Mode = Literal["auto", "refresh", "rebuild"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class Drift:
    """How far the catalogue moved from a published build: new items, items whose embedding changed, and the
    new items' mean reconstruction error under its codebooks relative to the build's own."""

    new_items: int
    new_item_share: float
    changed_items: int
    changed_item_share: float
    new_item_error_ratio: float


@dataclass(frozen=True)
class DriftBounds:
    """How much drift `auto` mode accepts before it rebuilds."""

    max_new_share: float = 0.2
    max_changed_share: float = 0.05
    max_error_ratio: float = 1.5


@dataclass(frozen=True)
class Decision:
    """Refresh the published build (new items go to its codebooks) or train a new one, and why."""

    refresh: bool
    reason: str


def decide(mode: Mode, drift: Drift | None, bounds: DriftBounds, settings_differ: bool) -> Decision:
    """Refresh or rebuild: `rebuild` always trains; without a published build (`drift` None) too; `refresh`
    always keeps the published codebooks; `auto` refreshes while the settings are the published build's and
    every drift figure stays within its bound, and lists what is over otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "rebuild":
        return Decision(False, "mode rebuild")
    if drift is None:
        return Decision(False, "no published build")
    over = [
        f"{name} {value} > {bound}"
        for name, value, bound in (
            ("new items", drift.new_item_share, bounds.max_new_share),
            ("changed items", drift.changed_item_share, bounds.max_changed_share),
            ("new-item error ratio", drift.new_item_error_ratio, bounds.max_error_ratio),
        )
        if value > bound
    ]
    if settings_differ:
        over.insert(0, "settings differ from the published build")
    if mode == "refresh" or not over:
        return Decision(True, f"refresh: {drift.new_items} new items go to the published codebooks")
    return Decision(False, "; ".join(over))


def same_inputs(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether a build recorded with inputs `recorded` was made from `current` (every current key equal)."""
    return all(recorded.get(key) == value for key, value in current.items())


def build_id(method: str, started: dt.datetime, run_id: str) -> str:
    """A new build's id: method, UTC start time to the second and the run's first 8 characters."""
    return f"{method}-{started.astimezone(dt.UTC):%Y%m%dT%H%M%S}-{run_id[:8]}"
