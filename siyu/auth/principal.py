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

    @classmethod
    def integration(cls, brand_id: int, name: str) -> Principal:
        """An API token: brand-wide, with the HQ admin's read rights (a token is issued by the
        brand's engineers for one integration; its reads of personal data are audited)."""
        return cls(0, brand_id, name, name, "hq_admin", "HQ", None, kind="token")

    @property
    def whole_brand(self) -> bool:
        return self.store_ids is None

    @property
    def sees_pii(self) -> bool:
        return self.role in PII_ROLES

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.username}"


class OutOfScope(LookupError):
    """Something exists but this principal may not read it: answered as 404, and audited."""

    def __init__(self, target: str, message: str = "not found") -> None:
        super().__init__(message)
        self.target = target
