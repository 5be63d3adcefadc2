"""GMV gap attribution between two periods, or a period and a benchmark (SPEC §5.6).

GMV = users × conversion × purchases per buyer × AOV, so ln GMV is the sum of the factors' logs.
The gap is split with log-share (LMDI) weights: factor f gets L(G₁, G₀) · ln(f₁ / f₀), where
L(a, b) = (a − b) / (ln a − ln b) is the logarithmic mean (L(a, a) = a). The parts add up to
G₁ − G₀ exactly, whatever the order of the factors, and each factor's ratio f₁/f₀ multiplies
into G₁/G₀ (each factor 10 % behind: 0.9⁴ ≈ 0.656 of the GMV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from siyu.metrics.report import Runner

FACTORS = ("users", "conversion", "purchases_per_buyer", "aov")


class CompareError(ValueError):
    """The two sides cannot be compared; the message names the factor."""


@dataclass(frozen=True)
class Factors:
    users: float
    conversion: float
    purchases_per_buyer: float
    aov: float

    @classmethod
    def from_report(cls, decomposition: dict[str, Any], label: str) -> Factors:
        values = {}
        for f in FACTORS:
            v = decomposition.get(f)
            if v is None or not v > 0:
                raise CompareError(
                    f"{label}: {f} is {v!r}; the GMV identity needs every factor above 0 "
                    "(a period with no pool or no buyers has nothing to attribute)"
                )
            values[f] = float(v)
        return cls(**values)

    @classmethod
    def parse(cls, text: str) -> Factors:
        """`users=8000,conversion=0.2,purchases_per_buyer=2.5,aov=4000` (a benchmark)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in FACTORS:
                raise CompareError(
                    f"--benchmark: {part!r} is not factor=value with factor one of {FACTORS}"
                )
            try:
                values[name] = float(raw)
            except ValueError:
                raise CompareError(f"--benchmark: {name}={raw!r} is not a number") from None
        missing = [f for f in FACTORS if f not in values]
        if missing:
            raise CompareError(f"--benchmark: missing {', '.join(missing)}")
        return cls.from_report(values, "--benchmark")

    @property
    def gmv(self) -> float:
        return self.users * self.conversion * self.purchases_per_buyer * self.aov


def _log_mean(a: float, b: float) -> float:
    return a if math.isclose(a, b, rel_tol=1e-15) else (a - b) / (math.log(a) - math.log(b))


def attribute(current: Factors, baseline: Factors) -> dict[str, Any]:
    """Each factor's ratio and its share of the GMV gap (current − baseline)."""
    g1, g0 = current.gmv, baseline.gmv
    weight = _log_mean(g1, g0)
    parts = {}
    for f in FACTORS:
        a, b = getattr(current, f), getattr(baseline, f)
        parts[f] = {
            "current": a,
            "baseline": b,
            "ratio": a / b,
            "contribution": weight * math.log(a / b),
        }
    return {
        "gmv": {"current": g1, "baseline": g0, "ratio": g1 / g0, "gap": g1 - g0},
        "factors": parts,
    }


def periods(
    con: Any,
    scope: Any,
    current: Any,
    baseline: Any,
    labels: tuple[str, str] = ("current period", "baseline period"),
) -> dict[str, Any]:
    """Attribute the GMV gap between two periods of one scope (CLI, API and console share
    this); CompareError names the side whose factors cannot be compared."""
    a = Factors.from_report(Runner(con, scope, current).one("gmv_decomposition"), labels[0])
    b = Factors.from_report(Runner(con, scope, baseline).one("gmv_decomposition"), labels[1])
    return attribute(a, b)
