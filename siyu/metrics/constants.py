"""The configurable constants of SPEC §5–6, with their defaults (settings: `SIYU_METRIC_*`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Constants:
    conversion_window: int = 30  # §5.4 W: days after first connection for a paid order
    roi_window: int = 90  # §5.7 W: days after acquisition whose orders a channel earns
    loyal_orders: int = 4  # §5.9 N paid orders …
    loyal_days: int = 30  # … in the trailing D days
    super_orders: int = 3  # §5.10 paid orders …
    super_days: int = 90  # … in the trailing days …
    super_referrals: int = 2  # … and successful referrals
    reach_days: int = 30  # §5.13 trailing days of a delivered message for the reach rate
    t1: int = 30  # §6 lifecycle T1
    t2: int = 90  # §6 lifecycle T2
    paying_days: int = 90  # §6 value layers: paying = a paid order in the trailing days
    active_days: int = 30  # … active = an interaction in the trailing days
    new_days: int = 7  # … newly activated = first connection in the trailing days
    quadrant_days: int = 365  # §6 business quadrant: the trailing days whose paid orders count
    quadrant_orders: int = 4  # … high frequency: at least this many paid orders
    quadrant_aov_fen: int = 10_000  # … high AOV: net sales per paid order at least this (fen)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"metric_{f.name}: must be a whole number ≥ 1, got {value!r}")
        if self.t1 >= self.t2:
            raise ValueError(f"metric_t1 ({self.t1}) must be below metric_t2 ({self.t2})")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Constants:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"metric.{unknown[0]}: unknown constant (known: {', '.join(sorted(names))})"
            )
        return cls(**{k: int(v) for k, v in values.items()})

    def params(self) -> dict[str, int]:
        return asdict(self)
