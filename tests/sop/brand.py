"""A hand-built brand for the SOP engine (times brand-local, Asia/Shanghai).

a  张三, phone …001, born 1990-03-15, member M1 (joined 2024-03-20); WeCom friend of G1 (S001
   静安店); bought a filter (F1) on 2025-02-01
b  李四, phone …002; friend of G2 (S002 朝阳店)
c  王五, no phone; friend of G2
d  赵六, phone …004, no WeCom friend; bought a filter on 2025-02-01 and coffee on 2025-02-02
e  friendship with G1 ended 2025-07-01
Groups GR1 (owner G1, S001) and GR2 (owner G2, S002).
"""

from __future__ import annotations

FILES = {
    "stores.csv": "store_id,name,region,city\nS001,静安店,华东,上海\nS002,朝阳店,华北,北京\n",
    "staff.csv": "staff_id,name,store_id\nG1,王导购,S001\nG2,李导购,S002\n",
    "groups.csv": "group_id,name,owner_staff_id,store_id\nGR1,静安福利群,G1,S001\n"
    "GR2,朝阳福利群,G2,S002\n",
    "channels.csv": "channel_id,name,type\nQR1,门店海报,offline\nQR2,电商包裹卡,ecommerce\n",
    "products.csv": "sku,name,category,price_fen,ladder_role\n"
    "F1,滤芯,filter,19900,profit\nC1,美式咖啡,coffee,2000,traffic\n",
    "records.csv": "record_id,source,external_userid,phone,member_no,name,gender,birthday,city\n"
    "ra,wecom,a,13800000001,M1,张三,男,1990-03-15,上海\n"
    "rb,wecom,b,13800000002,,李四,女,,北京\n"
    "rc,wecom,c,,,王五,,,\n"
    "rd,pos,,13800000004,,赵六,,,\n"
    "re,wecom,e,,,,,,\n",
    "memberships.csv": "member_no,joined_at,level,points\nM1,2024-03-20 10:00,gold,100\n",
    "connections.csv": "kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at\n"
    "wecom_friend,external_userid,a,G1,,,2025-01-01 10:00,\n"
    "wecom_friend,external_userid,b,G2,,,2025-01-01 10:00,\n"
    "wecom_friend,external_userid,c,G2,,,2025-01-01 10:00,\n"
    "wecom_friend,external_userid,e,G1,,,2025-01-01 10:00,2025-07-01 10:00\n",
    "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,"
    "refund_fen\n"
    "A1,pos,S001,external_userid,a,2025-02-01 12:00,19900,paid,\n"
    "D1,pos,S001,phone,13800000004,2025-02-01 15:00,19900,paid,\n"
    "D2,pos,S001,phone,13800000004,2025-02-02 15:00,2000,paid,\n",
    "order_items.csv": "order_id,sku,qty,amount_fen\nA1,F1,1,19900\nD1,F1,1,19900\nD2,C1,1,2000\n",
}
