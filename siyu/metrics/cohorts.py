"""Cohort tables (SPEC §5.3–5.5): first-connection cohort × period offset."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from siyu.metrics.period import Period
from siyu.metrics.report import Runner

METRICS = ("retention", "conversion", "repurchase")
UNITS = ("week", "month")


@dataclass(frozen=True)
class CohortTable:
    unit: str
    metric: str
    periods: int
    rows: list[dict[str, Any]]  # {cohort: date, size: int, values: [float | None] * periods}

    def as_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "metric": self.metric,
            "offsets": list(range(self.periods)),
            "cohorts": [
                {"cohort": r["cohort"].isoformat(), "size": r["size"], "values": r["values"]}
                for r in self.rows
            ],
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["cohort", "size", *(f"{self.unit}_{k}" for k in range(self.periods))])
        for r in self.rows:
            w.writerow(
                [r["cohort"].isoformat(), r["size"], *("" if v is None else v for v in r["values"])]
            )
        return out.getvalue()


def data_end(con: duckdb.DuckDBPyConnection, brand_id: int) -> datetime:
    """The latest instant the data covers (orders, connections made or ended): checkpoints
    after it are not yet observable."""
    row = con.execute(
        "SELECT epoch_us(greatest("
        " (SELECT max(created_at) FROM orders WHERE brand_id = $b),"
        " (SELECT max(greatest(created_at, coalesce(ended_at, created_at))) FROM connections"
        "  WHERE brand_id = $b)))",
        {"b": brand_id},
    ).fetchone()
    return datetime.fromtimestamp((row[0] or 0) / 1e6 if row else 0, UTC)


def build(
    runner: Runner, period: Period, *, unit: str, metric: str, periods: int, as_of: datetime
) -> CohortTable:
    if unit not in UNITS:
        raise ValueError(f"--by: {unit!r} is not one of {', '.join(UNITS)}")
    if metric not in METRICS:
        raise ValueError(f"--metric: {metric!r} is not one of {', '.join(METRICS)}")
    if not 1 <= periods <= 60:
        raise ValueError(f"--periods: {periods} is outside 1–60")
    runner.params.update(unit=unit, periods=periods, as_of=as_of, tz=period.timezone)
    by_cohort: dict[date, dict[str, Any]] = {}
    for row in runner.rows("cohorts"):
        entry = by_cohort.setdefault(
            row["cohort"], {"cohort": row["cohort"], "size": row["cohort_size"], "values": []}
        )
        entry["values"].append(row[metric])
    return CohortTable(unit, metric, periods, list(by_cohort.values()))
