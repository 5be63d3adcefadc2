"""The metrics report of DATA_FORMAT.md (`siyu metrics --json`), assembled from the SQL files.

Each number comes from exactly one file in siyu/metrics/sql; this module only binds the
parameters, runs the files and arranges their rows under the report's keys. The two products of
the private-domain triangle are composed from numbers of other files, not recomputed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb

from siyu.metrics.constants import Constants
from siyu.metrics.period import Period
from siyu.metrics.scope import Scope, install
from siyu.warehouse.duck import composed, run

SQL_PACKAGE = "siyu.metrics"
LIFECYCLE_STAGES = ("introduction", "growth", "maturity", "dormant", "churned")
VALUE_LAYERS = ("loyal_fans", "paying", "active", "newly_activated", "regular")
QUADRANTS = ("high_freq_high_aov", "high_freq_low_aov", "low_freq_high_aov", "low_freq_low_aov")
RFM_CLASSES = (
    "important_value",
    "important_development",
    "important_retention",
    "important_winback",
    "general_value",
    "general_development",
    "general_retention",
    "general_winback",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class Runner:
    """Runs the metric SQL files for one scope and period."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        scope: Scope,
        period: Period,
        constants: Constants | None = None,
    ) -> None:
        self.con = con
        install(con, scope)
        self.params: dict[str, Any] = {
            "brand_id": scope.brand_id,
            **period.params(),
            **(constants or Constants()).params(),
        }

    def rows(self, name: str, sql: str | None = None) -> list[dict[str, Any]]:
        text = sql if sql is not None else composed(SQL_PACKAGE, name)
        cur = run(self.con, text, self.params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, map(_plain, r), strict=True)) for r in cur.fetchall()]

    def columns(self, name: str) -> dict[str, Any]:
        """The file's result as NumPy arrays, one per column (for model fitting)."""
        return run(self.con, composed(SQL_PACKAGE, name), self.params).fetchnumpy()

    def one(self, name: str) -> dict[str, Any]:
        return self.rows(name)[0]

    def counts(self, name: str, column: str, keys: tuple[str, ...]) -> dict[str, int]:
        """Customers per value of `column` of a per-customer file, every key present."""
        inner = composed(SQL_PACKAGE, name)
        found = {
            r["k"]: r["n"]
            for r in self.rows(
                name, f"SELECT {column} AS k, count(*) AS n FROM ({inner}) GROUP BY {column}"
            )
        }
        return {k: int(found.get(k, 0)) for k in keys}


def build(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    period: Period,
    constants: Constants | None = None,
) -> dict[str, Any]:
    """Every key of the DATA_FORMAT.md report, in its order."""
    r = Runner(con, scope, period, constants)
    pool = r.one("pool")
    retention = r.one("retention")
    repurchase = r.one("repurchase")
    sales = r.one("sales")
    decomposition = r.one("gmv_decomposition")
    ltv = r.one("ltv")
    join = r.one("non_member_join_rate")
    triangle = r.one("triangle")
    satisfaction = r.one("satisfaction")
    mean_ltv, rate = ltv["mean_historic"], repurchase["rate"]
    return {
        "period": period.as_json(),
        "customers": {
            "total": r.one("customers")["total"],
            "quarantined_identifiers": [x["identifier"] for x in r.rows("quarantined")],
        },
        "pool": {"start": pool["start"], "end": pool["end"]},
        "pass_rate": {x["channel"]: x["rate"] for x in r.rows("pass_rate")},
        "retention": {k: retention[k] for k in ("cohort_size", "d7", "d30", "d90")},
        "conversion": {f"w{r.params['conversion_window']}": r.one("conversion")["rate"]},
        "repurchase": {k: repurchase[k] for k in ("rate", "purchases_per_buyer")},
        "sales": {k: sales[k] for k in ("gmv", "orders", "net_sales", "aov")},
        "gmv_decomposition": {
            k: decomposition[k]
            for k in ("users", "conversion", "purchases_per_buyer", "aov", "gmv")
        },
        "roi": {
            x["channel"]: {k: x[k] for k in ("revenue", "cost", "roi", "cac")}
            for x in r.rows("roi")
        },
        "ltv": {"mean_historic": mean_ltv},
        "loyal": r.one("loyal")["loyal"],
        "super_users": r.one("super_users")["super_users"],
        "non_member_join_rate": {k: join[k] for k in ("numerator", "denominator", "rate")},
        "guide_assets": {x["staff"]: x["customers"] for x in r.rows("guide_assets")},
        "triangle": {
            "reach_rate": triangle["reach_rate"],
            # pool × reach rate, i.e. the reached customers themselves (exact, no float noise)
            "property_power": None if triangle["reach_rate"] is None else triangle["reached"],
            "single_customer_value": (
                None if mean_ltv is None or rate is None else mean_ltv * rate
            ),
            "referral_rate": triangle["referral_rate"],
        },
        "community_gmv": r.one("community_gmv")["community_gmv"],
        "satisfaction": {k: satisfaction[k] for k in ("mean", "share_4_5", "responses")},
        "lifecycle": r.counts("lifecycle_stage", "stage", LIFECYCLE_STAGES),
        "rfm_classes": r.counts("rfm", "class", RFM_CLASSES),
    }
