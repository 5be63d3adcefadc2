"""The files of the interchange format v1 and their columns, in DATA_FORMAT.md order."""

from __future__ import annotations

_SPEC = {
    "stores": "store_id,name,region,city,lat,lon,radius_m",
    "staff": "staff_id,name,store_id,persona",
    "groups": "group_id,name,owner_staff_id,store_id,created_at",
    "channels": "channel_id,name,type",
    "channel_costs": "channel_id,date,cost_fen",
    "channel_reach": "channel_id,date,count",
    "records": "record_id,source,external_userid,unionid,openid_mp,openid_oa,member_no,phone,"
    "email,tmall_nick,jd_pin,douyin_openid,youzan_id,name,gender,birthday,city",
    "connections": "kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at",
    "orders": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,refund_fen",
    "order_items": "order_id,sku,qty,amount_fen",
    "products": "sku,name,category,price_fen,ladder_role",
    "memberships": "member_no,joined_at,level,points",
    "referrals": "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,created_at",
    "deliveries": "id_type,id_value,channel,created_at,status",
    "interactions": "id_type,id_value,kind,created_at",
    "surveys": "id_type,id_value,created_at,score",
    "opt_outs": "id_type,id_value,created_at",
}

FILE_COLUMNS: dict[str, tuple[str, ...]] = {name: tuple(s.split(",")) for name, s in _SPEC.items()}
