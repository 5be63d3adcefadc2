"""A small hand-built brand whose every metric can be worked out on paper.

People (customers after identity resolution):
  P1  wecom e1 + phone …001 — friend of G1 (store S001) via C1 since 06-20, in group GR1 from 07-02
  P2  wecom e2 — friend of G1 via C1 from exactly 07-01 00:00 (the period start) to 07-10
  P3  wecom e3 — friend of G2 (S002) via C2 from 07-15 23:30; referred by P1; opted out 07-25
  P4  POS member M4 with phone …004 — no connection, no orders
  P5  two records, one person: wecom e5 + phone …005, and POS member M5 + phone …005 —
      friend of G2 via C2 from 06-01 until exactly 08-01 00:00 (the period end); joined 07-31
The period is [2025-07-01, 2025-08-01) in Asia/Shanghai.
"""

from __future__ import annotations

FROM, TO = "2025-07-01", "2025-08-01"

FILES = {
    "stores.csv": "store_id,name,region,city\nS001,静安店,华东,上海\nS002,朝阳店,华北,北京\n",
    "staff.csv": "staff_id,name,store_id\nG1,王导购,S001\nG2,李导购,S002\n",
    "groups.csv": "group_id,name,owner_staff_id,store_id\nGR1,静安咖啡群,G1,S001\n",
    "channels.csv": "channel_id,name,type\nC1,门店二维码,store_qr\nC2,朋友圈广告,ads\n"
    "C3,公众号菜单,oa\n",
    "channel_costs.csv": "channel_id,date,cost_fen\nC1,2025-07-01,1000\nC2,2025-07-15,2000\n"
    "C2,2025-06-30,999\n",
    "channel_reach.csv": "channel_id,date,count\nC1,2025-07-01,10\nC2,2025-07-15,4\n"
    "C3,2025-07-02,5\n",
    "records.csv": "record_id,source,external_userid,phone,member_no\n"
    "r1,wecom,e1,13800000001,\n"
    "r2,wecom,e2,,\n"
    "r3,wecom,e3,,\n"
    "r4,pos,,13800000004,M4\n"
    "r5a,wecom,e5,13800000005,\n"
    "r5b,pos,,13800000005,M5\n",
    "connections.csv": "kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at\n"
    "wecom_friend,external_userid,e1,G1,,C1,2025-06-20 10:00,\n"
    "wecom_friend,external_userid,e2,G1,,C1,2025-07-01 00:00,2025-07-10 12:00\n"
    "wecom_friend,external_userid,e3,G2,,C2,2025-07-15 23:30,\n"
    "wecom_friend,external_userid,e5,G2,,C2,2025-06-01 09:00,2025-08-01 00:00\n"
    "group_member,external_userid,e1,,GR1,,2025-07-02 08:00,\n",
    "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,"
    "refund_fen\n"
    "O1,pos,S001,phone,13800000001,2025-07-05 12:00,1000,paid,\n"
    "O2,pos,S001,phone,13800000001,2025-07-06 12:00,2000,refunded,2000\n"
    "O3,mp,,phone,+86 138-0000-0001,2025-07-07 12:00,3000,paid,500\n"
    "O4,pos,S002,member_no,M5,2025-07-31 23:59,4000,paid,\n"
    "O5,pos,S002,phone,13800000005,2025-08-01T00:00:30+08:00,8000,paid,\n"
    "O6,pos,S001,,,2025-07-10 15:00,500,paid,\n"
    "O7,pos,S001,phone,13800000001,2025-07-08 12:00,9000,cancelled,\n"
    "O8,mp,,external_userid,e3,2025-07-20 12:00,1500,paid,\n",
    "memberships.csv": "member_no,joined_at\nM4,2025-05-01 10:00\nM5,2025-07-31 10:00\n",
    "referrals.csv": "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,"
    "created_at\nphone,13800000001,external_userid,e3,2025-07-15 23:00\n",
    "deliveries.csv": "id_type,id_value,channel,created_at,status\n"
    "external_userid,e1,wecom,2025-07-20 09:00,delivered\n"
    "external_userid,e3,wecom,2025-07-21 09:00,failed\n",
    "surveys.csv": "id_type,id_value,created_at,score\n"
    "external_userid,e1,2025-07-10 10:00,5\n"
    "external_userid,e3,2025-07-12 10:00,3\n"
    "external_userid,e2,2025-06-30 10:00,4\n",
    "opt_outs.csv": "id_type,id_value,created_at\nexternal_userid,e3,2025-07-25 10:00\n",
}
