"""What a report looks at: one brand, optionally narrowed to stores or an acquisition channel.

The metric SQL files never read the mirrored tables for facts directly; they read the `v_*`
views installed here, so a filter is applied in one place for every metric (issue #4: `--store`,
`--region`, `--channel`). Filters narrow:
- stores: orders placed at those stores; connections with their staff or in their groups;
- a channel: customers acquired through it (first touch), with all their orders and connections.
Acquisition itself (first touch) is always judged over all of a customer's connections.

Only integers and a validated zone name are inlined into the views; every other value reaches
the SQL as a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import duckdb

from siyu.auth.principal import OutOfScope, Principal


class ScopeError(ValueError):
    """A filter naming a store, region or channel the brand does not have."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Scope:
    brand_id: int
    timezone: str = "Asia/Shanghai"
    store_ids: tuple[int, ...] | None = None  # None: every store
    channel_id: int | None = None  # None: every channel

    @property
    def filtered(self) -> bool:
        return self.store_ids is not None or self.channel_id is not None


# An order's net refund and its two states (DATA_FORMAT.md): cancelled, and paid (not cancelled
# and not refunded in full). Also read by the warehouse's per-customer order summary
# (siyu.warehouse.order_summary), so both count the same orders.
ORDER_FLAGS = (
    "coalesce(refund_fen, 0) AS refund_fen, status, status = 'cancelled' AS cancelled, "
    "status <> 'cancelled' AND coalesce(refund_fen, 0) < amount_fen AS paid"
)


def _ids(values: tuple[int, ...]) -> str:
    return ", ".join(str(int(v)) for v in values) or "NULL"


def install(con: duckdb.DuckDBPyConnection, scope: Scope) -> None:
    """Create the session's macros and views for `scope` (replacing any earlier ones)."""
    ZoneInfo(scope.timezone)  # raises on an unknown zone before it reaches SQL
    tz = scope.timezone.replace("'", "''")
    b = int(scope.brand_id)
    con.execute(f"CREATE OR REPLACE TEMP MACRO local_day(ts) AS CAST(timezone('{tz}', ts) AS DATE)")
    con.execute(
        "CREATE OR REPLACE TEMP MACRO plus_days(ts, n) AS "
        f"timezone('{tz}', timezone('{tz}', ts) + to_days(CAST(n AS INTEGER)))"
    )
    channel = f" AND id = {int(scope.channel_id)}" if scope.channel_id is not None else ""
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW v_channels AS SELECT * FROM channels WHERE brand_id = {b}"
        f"{channel}"
    )
    # First touch: the channel of the earliest connection, ties to the smallest channel id.
    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_acquisition AS "
        "SELECT customer_id, channel_id, created_at AS acquired_at FROM ("
        " SELECT customer_id, channel_id, created_at, row_number() OVER ("
        "  PARTITION BY customer_id ORDER BY created_at, channel_id NULLS LAST) AS rn"
        f" FROM connections WHERE brand_id = {b} AND customer_id IS NOT NULL) WHERE rn = 1"
    )
    conn_filter: list[str] = []
    order_filter: list[str] = []
    if scope.store_ids is not None:
        ids = _ids(scope.store_ids)
        conn_filter.append(
            f"(staff_id IN (SELECT id FROM staff WHERE store_id IN ({ids})) OR "
            f"group_id IN (SELECT id FROM groups WHERE store_id IN ({ids})))"
        )
        order_filter.append(f"store_id IN ({ids})")
    if scope.channel_id is not None:
        acquired = (
            "customer_id IN (SELECT customer_id FROM v_acquisition "
            f"WHERE channel_id = {int(scope.channel_id)})"
        )
        conn_filter.append(acquired)
        order_filter.append(acquired)

    def where(extra: list[str]) -> str:
        return "".join(f" AND {e}" for e in extra)

    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_connections AS SELECT * FROM connections "
        f"WHERE brand_id = {b}{where(conn_filter)}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_orders AS SELECT id, customer_id, store_id, platform, "
        f"created_at, amount_fen, {ORDER_FLAGS} "
        f"FROM orders WHERE brand_id = {b}{where(order_filter)}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_first_connection AS SELECT customer_id, "
        "min(created_at) AS first_at FROM v_connections WHERE customer_id IS NOT NULL "
        "GROUP BY customer_id"
    )
    # The live customers in scope, with the profile fields segment rules test (so a rule needs
    # no second pass over the customers table).
    live = (
        "SELECT id AS customer_id, city, gender, birthday FROM customers "
        f"WHERE brand_id = {b} AND merged_into_id IS NULL"
    )
    if scope.filtered:
        live += (
            " AND id IN (SELECT customer_id FROM v_connections UNION "
            "SELECT customer_id FROM v_orders)"
        )
    con.execute(f"CREATE OR REPLACE TEMP VIEW v_customers AS {live}")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_referrals AS SELECT * FROM referrals "
        f"WHERE brand_id = {b} AND referrer_customer_id IS NOT NULL "
        "AND invitee_customer_id IS NOT NULL AND referrer_customer_id <> invitee_customer_id"
    )
    in_scope = ["customer_id IN (SELECT customer_id FROM v_customers)"] if scope.filtered else []
    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_surveys AS SELECT * FROM surveys "
        f"WHERE brand_id = {b}{where(in_scope)}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW v_interactions AS SELECT * FROM interactions "
        f"WHERE brand_id = {b}{where(in_scope)}"
    )


def resolve(
    con: duckdb.DuckDBPyConnection,
    brand_id: int,
    timezone: str,
    stores: list[str] | None,
    regions: list[str] | None,
    channel: str | None,
) -> Scope:
    """Turn store codes, region names and a channel code into a Scope; unknown ones are errors."""
    store_ids: set[int] | None = None
    if stores:
        found = dict(
            con.execute(
                "SELECT code, id FROM stores WHERE brand_id = ? AND list_contains(?, code)",
                [brand_id, stores],
            ).fetchall()
        )
        unknown = [c for c in stores if c not in found]
        if unknown:
            raise ScopeError("store", f"unknown store code {unknown[0]!r}")
        store_ids = set(found.values())
    if regions:
        rows = con.execute(
            "SELECT region, id FROM stores WHERE brand_id = ? AND list_contains(?, region)",
            [brand_id, regions],
        ).fetchall()
        unknown = [r for r in regions if r not in {row[0] for row in rows}]
        if unknown:
            raise ScopeError("region", f"unknown region {unknown[0]!r}")
        ids = {row[1] for row in rows}
        store_ids = ids if store_ids is None else store_ids & ids
    channel_id = None
    if channel is not None:
        row = con.execute(
            "SELECT id FROM channels WHERE brand_id = ? AND code = ?", [brand_id, channel]
        ).fetchone()
        if row is None:
            raise ScopeError("channel", f"unknown channel code {channel!r}")
        channel_id = int(row[0])
    return Scope(
        brand_id,
        timezone,
        tuple(sorted(store_ids)) if store_ids is not None else None,
        channel_id,
    )


def readable(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    timezone: str,
    stores: list[str] | None = None,
    regions: list[str] | None = None,
    channel: str | None = None,
) -> Scope:
    """THE metrics scope of a console user: the filters asked for, narrowed to the stores the
    user's org unit covers (SPEC §1). HQ roles get `resolve` unchanged.

    For a scoped user a store or region outside their subtree is refused exactly like one that
    does not exist (OutOfScope → 404), so the answer never reveals another store's existence.
    """
    if principal.store_ids is None:
        return resolve(con, principal.brand_id, timezone, stores, regions, channel)
    allowed = set(principal.store_ids)
    try:
        asked = resolve(con, principal.brand_id, timezone, stores, None, channel)
    except ScopeError as e:
        if e.field == "channel":
            raise
        raise OutOfScope(f"store:{','.join(stores or [])}", str(e)) from None
    if asked.store_ids is not None and not set(asked.store_ids) <= allowed:
        outside = ",".join(stores or [])
        raise OutOfScope(f"store:{outside}", f"unknown store code {outside!r}")
    ids = set(asked.store_ids) if asked.store_ids is not None else allowed
    if regions:
        in_regions: set[int] = set()
        for region in regions:
            rows = con.execute(
                "SELECT id FROM stores WHERE brand_id = ? AND region = ?",
                [principal.brand_id, region],
            ).fetchall()
            mine = {int(r[0]) for r in rows} & allowed
            if not mine:
                raise OutOfScope(f"region:{region}", f"unknown region {region!r}")
            in_regions |= mine
        ids &= in_regions
    return Scope(asked.brand_id, asked.timezone, tuple(sorted(ids)), asked.channel_id)
