"""`/api/v1/tags` and `/api/v1/customers/{id}/tags/{tag_id}`: tags for integrations.

Changes made here are recorded like any other: history `by` = "api:<integration>", source
"manual", and a tag.added / tag.removed event.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from siyu.api_errors import ApiError
from siyu.app import AppContext, brand_wide_only, context, needs, not_found
from siyu.auth.principal import Principal
from siyu.customers import service as customer_service
from siyu.tags import service
from siyu.tags.service import TagError

router = APIRouter(tags=["tags"])

# The field a TagError's message starts with → the request field it blames.
FIELDS = {"GROUP": "group", "NAME": "name", "rule": "rule", "kind": "kind", "tag_id": "tag_id",
          "--group": "group"}  # fmt: skip


class NewTag(BaseModel):
    group: str = Field(description="Tag group 标签组 (created on first use)")
    name: str = Field(description="Tag name, unique in its group")
    rule: dict[str, Any] | None = Field(
        default=None, description="A segment rule: makes a rule tag, refreshed daily"
    )


def _error(e: TagError) -> ApiError:
    head, _, rest = str(e).partition(": ")
    field = FIELDS.get(head)
    if "already has" in rest:
        return ApiError(409, "conflict", rest, field)
    if head == "tag_id" and rest.startswith("no tag"):
        return ApiError(404, "not_found", rest, field)
    return ApiError(422, "invalid", rest if field else str(e), field)


@router.get("/tags", summary="Tags with their group, kind, WeCom id and customer count")
def list_tags(
    group: str | None = None,
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        try:
            return {"tags": service.list_tags(conn, brand_id=ctx.brand_id, group=group)}
        except TagError as e:
            raise _error(e) from None


@router.post("/tags", status_code=201, summary="Create a tag (a rule tag when a rule is given)")
def create_tag(
    body: NewTag, ctx: AppContext = Depends(context), who: Principal = Depends(needs("write"))
) -> dict[str, Any]:
    brand_wide_only(who, "tags")
    with ctx.engine.begin() as conn:
        try:
            tag_id = service.create_tag(conn, brand_id=ctx.brand_id, group=body.group,
                                        name=body.name, rule=body.rule)  # fmt: skip
            tag = service.get_tag(conn, brand_id=ctx.brand_id, tag_id=tag_id)
        except TagError as e:
            raise _error(e) from None
    return {"id": tag.id, "group": tag.group, "name": tag.name, "kind": tag.kind,
            "wecom_tag_id": tag.wecom_tag_id, "customers": 0}  # fmt: skip


def _change(
    ctx: AppContext, who: Principal, customer_id: int, tag_id: int, add: bool
) -> dict[str, Any]:
    with ctx.engine.begin() as conn:
        try:
            live, _ = customer_service.resolve_key_or_raise(
                conn, brand_id=ctx.brand_id, key=str(customer_id)
            )
        except customer_service.CustomerNotFound as e:
            raise ApiError(404, "not_found", str(e), "customer_id") from None
        readable = customer_service.can_read(conn, who, live)
        if readable:
            fn = service.tag_customers if add else service.untag_customers
            try:
                n = fn(conn, brand_id=ctx.brand_id, tag_id=tag_id, customer_ids=[live],
                       by=f"api:{who.username}", source="manual")  # fmt: skip
            except TagError as e:
                raise _error(e) from None
    if not readable:  # a customer outside the token's scope is answered as missing
        raise not_found(ctx, who, f"customer:{live}", f"no customer {customer_id}", "customer_id")
    return {"customer_id": live, "tag_id": tag_id, "changed": n == 1}


@router.post("/customers/{customer_id}/tags/{tag_id}", summary="Tag a customer (idempotent)")
def tag_customer(
    customer_id: int, tag_id: int, ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("write")),
) -> dict[str, Any]:  # fmt: skip
    return _change(ctx, who, customer_id, tag_id, add=True)


@router.delete("/customers/{customer_id}/tags/{tag_id}", summary="Untag a customer (idempotent)")
def untag_customer(
    customer_id: int, tag_id: int, ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("write")),
) -> dict[str, Any]:  # fmt: skip
    return _change(ctx, who, customer_id, tag_id, add=False)
