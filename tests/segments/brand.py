"""A hand-built brand for segment rules, evaluated as of 2025-08-01 00:00 (Asia/Shanghai).

a  张三 男 1990-03-15 上海, phone …001, member M1 (gold, 100 points); friend of G1 (S001 静安,
   华东) and in group GR1; two coffee orders (C1) at S001 on 06-12 and 06-22 (50 and 40 days
   before); tags 咖啡爱好者 (兴趣)
b  李四 女 1992-07-01 北京, phone …002; friend of G2 (S002 朝阳, 华北); one tea order (T1) on
   Tmall on 07-22; tag 茶爱好者 (兴趣); opted out of every channel
c  no profile; friend of G2; never ordered; read an article on 07-27; opted out of SMS only
d  上海, member M4 (silver); no connection; one coffee order at S001 on 2025-01-12 (201 days)
e  friendship with G1 ended 07-01; tags 咖啡爱好者 and 茶爱好者 (the latter in group 口味);
   one mini-program order holding coffee and tea on 07-12
"""

from __future__ import annotations

AS_OF = "2025-08-01"

FILES = {
    "stores.csv": "store_id,name,region,city\nS001,静安店,华东,上海\nS002,朝阳店,华北,北京\n",
    "staff.csv": "staff_id,name,store_id\nG1,王导购,S001\nG2,李导购,S002\n",
    "groups.csv": "group_id,name,owner_staff_id,store_id\nGR1,静安咖啡群,G1,S001\n",
    "products.csv": "sku,name,category,price_fen,ladder_role\n"
    "C1,美式咖啡,coffee,2000,traffic\nT1,乌龙茶,tea,3000,profit\n",
    "records.csv": "record_id,source,external_userid,phone,member_no,name,gender,birthday,city\n"
    "ra,wecom,a,13800000001,M1,张三,男,1990-03-15,上海\n"
    "rb,wecom,b,13800000002,,李四,女,1992-07-01,北京\n"
    "rc,wecom,c,,,,,,\n"
    "rd,pos,d,,M4,,,,上海\n"
    "re,wecom,e,,,,,,\n",
    "memberships.csv": "member_no,joined_at,level,points\n"
    "M1,2025-01-01 10:00,gold,100\nM4,2024-06-01 10:00,silver,10\n",
    "connections.csv": "kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at\n"
    "wecom_friend,external_userid,a,G1,,,2025-03-01 10:00,\n"
    "group_member,external_userid,a,,GR1,,2025-03-02 10:00,\n"
    "wecom_friend,external_userid,b,G2,,,2025-07-28 10:00,\n"
    "wecom_friend,external_userid,c,G2,,,2025-05-01 10:00,\n"
    "wecom_friend,external_userid,e,G1,,,2025-02-01 10:00,2025-07-01 10:00\n",
    "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,"
    "refund_fen\n"
    "A1,pos,S001,external_userid,a,2025-06-12 12:00,2000,paid,\n"
    "A2,pos,S001,external_userid,a,2025-06-22 12:00,4000,paid,\n"
    "B1,tmall,,external_userid,b,2025-07-22 12:00,3000,paid,\n"
    "D1,pos,S001,external_userid,d,2025-01-12 12:00,2000,paid,\n"
    "E1,mp,,external_userid,e,2025-07-12 12:00,5000,paid,\n"
    "E0,mp,,external_userid,e,2025-07-13 12:00,9000,cancelled,\n",
    "order_items.csv": "order_id,sku,qty,amount_fen\n"
    "A1,C1,1,2000\nA2,C1,2,4000\nB1,T1,1,3000\nD1,C1,1,2000\nE1,C1,1,2000\nE1,T1,1,3000\n"
    "E0,T1,3,9000\n",
    "interactions.csv": "id_type,id_value,kind,created_at\n"
    "external_userid,c,article_view,2025-07-27 09:00\n",
    "opt_outs.csv": "id_type,id_value,created_at\nexternal_userid,b,2025-07-23 10:00\n",
}

# c's SMS-only opt-out: the interchange format has no opt-out channel, so the test inserts it.
SMS_OPT_OUT = ("c", "sms", "2025-07-23 02:00:00+00:00")

# (person, tag group, tag)
TAGS = [("a", "兴趣", "咖啡爱好者"), ("b", "兴趣", "茶爱好者"), ("e", "兴趣", "咖啡爱好者"),
        ("e", "口味", "茶爱好者")]  # fmt: skip
