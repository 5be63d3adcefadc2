"""Who is reading: a console user's role and the part of the org tree it covers (SPEC §1, §12).

Every domain turns a Principal into its own readable scope in one function (metrics:
`siyu.metrics.scope.readable`; customers: `siyu.customers.service.readable_customer_ids`), so an
endpoint or page never decides access by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("hq_admin", "hq_operator", "analyst", "region_manager", "store_manager", "guide")
HQ_ROLES = ("hq_admin", "hq_operator", "analyst")
# Roles that see whole phone numbers and names: the people who contact a customer one to one
# (guide, store manager) and the HQ admin who answers PIPL requests. The others see 138****8000.
PII_ROLES = ("hq_admin", "store_manager", "guide")
# The org-unit kind each role is attached to.
ROLE_UNIT = {
    "hq_admin": "hq",
    "hq_operator": "hq",
    "analyst": "hq",
    "region_manager": "region",
    "store_manager": "store",
    "guide": "store",
}
# What an API token may do, on top of its role's scope of the org tree (issue #7):
#   ingest  POST /api/v1/events and /api/v1/ingest (and nothing else);
#   read    every GET: customers (masked without `pii`), metrics, directory, tags, segments,
#           SOPs; and POST /segments/count, which only reads;
#   write   changes through the API: tag / untag, create tags, define and refresh segments,
#           erase a customer (with `pii`);
#   pii     unmasked phones and names, where the role has the right (PII_ROLES), and the
#           PIPL export and erasure of one customer (hq_admin).
SCOPES = ("ingest", "read", "write", "pii")


@dataclass(frozen=True)
class Principal:
    user_id: int
    brand_id: int
    username: str
    display_name: str
    role: str
    org_unit: str  # the unit's name: "HQ", a region, a store code
    store_ids: tuple[int, ...] | None  # None: every store of the brand
    staff_id: int | None = None  # a guide's own staff record
    kind: str = "user"  # or "token": an integration calling the API
    # A token's scopes (SCOPES); None for a console user, whose role alone decides.
    scopes: frozenset[str] | None = None

    def has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes

    @property
    def whole_brand(self) -> bool:
        return self.store_ids is None

    @property
    def sees_pii(self) -> bool:
        return self.role in PII_ROLES and self.has_scope("pii")

    @property
    def audit_user_id(self) -> int | None:
        """The app_user row behind the principal, for the audit log (None for a token)."""
        return self.user_id if self.kind == "user" else None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.username}"


class OutOfScope(LookupError):
    """Something exists but this principal may not read it: answered as 404, and audited."""

    def __init__(self, target: str, message: str = "not found") -> None:
        super().__init__(message)
        self.target = target
