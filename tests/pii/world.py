"""A small brand with phones, emails and names everywhere a customer can be named, and a scan of
the raw stores for any of them in clear."""

from __future__ import annotations

import re
from collections.abc import Iterator

import duckdb
from sqlalchemy import JSON, Connection, Engine, String, Text, inspect, text

from siyu.auth import users
from siyu.config import Settings
from siyu.runtime import open_brand

PHONE = "13800138000"  # customer 1: a POS record and a mini-program record share it
OTHER = "13900139001"  # customer 2, known from an order and a referral only
EMAIL = "wang.xm@example.com"
NAME = "王小明"
FILES = {
    "stores.csv": "store_id,name,region,city\nS001,静安店,华东,上海\n",
    "staff.csv": "staff_id,name,store_id\nG1,李导购,S001\n",
    "records.csv": "record_id,source,phone,email,member_no,name,birthday\n"
    f"A,pos,{PHONE},,M1,{NAME},1990-05-01\n"
    f"B,mp,+86 138-0013-8000,{EMAIL.upper()},,,\n",
    "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status\n"
    f"O1,pos,S001,phone,{PHONE},2025-07-05 12:00,1000,paid\n"
    f"O2,mp,,phone,{OTHER},2025-07-06 12:00,2000,paid\n",
    "connections.csv": "kind,id_type,id_value,staff_id,created_at\n"
    f"wecom_friend,phone,{PHONE},G1,2025-07-01 10:00\n",
    "referrals.csv": "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,"
    f"created_at\nphone,{PHONE},phone,{OTHER},2025-07-02 10:00\n",
    "deliveries.csv": "id_type,id_value,channel,created_at,status\n"
    f"phone,{PHONE},sms,2025-07-03 09:00,delivered\n",
    "interactions.csv": f"id_type,id_value,kind,created_at\nemail,{EMAIL},open,2025-07-03 10:00\n",
    "surveys.csv": f"id_type,id_value,created_at,score\nphone,{PHONE},2025-07-04 10:00,5\n",
    "opt_outs.csv": f"id_type,id_value,created_at\nphone,{OTHER},2025-07-08 10:00\n",
}
# An 11-digit mainland mobile standing alone (not inside a hash or a sealed value, whose
# alphabets are letters, digits, - and _), the brand's numbers in any spelling, an email, the
# name: none may be stored in clear.
CLEAR = re.compile(
    r"(?<![0-9A-Za-z_-])1[3-9]\d{9}(?![0-9A-Za-z_-])|(?<![0-9A-Za-z_-])\+?861[3-9]\d{9}"
    r"|138[\s-]?0013[\s-]?8000|139[\s-]?0013[\s-]?9001|[\w.]+@example\.com|小明",
    re.IGNORECASE,
)


def text_columns(conn: Connection) -> Iterator[tuple[str, str]]:
    insp = inspect(conn)
    for table in insp.get_table_names():
        for col in insp.get_columns(table):
            if isinstance(col["type"], String | Text | JSON):
                yield table, col["name"]


def clear_values_in_store(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, value) of every stored text holding a phone, an email or the name."""
    found = []
    with engine.connect() as conn:
        for table, column in text_columns(conn):
            for (value,) in conn.execute(text(f'SELECT "{column}" FROM "{table}"')):
                if value is not None and CLEAR.search(str(value)):
                    found.append((table, column, str(value)))
    return found


def clear_values_in_warehouse(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    found = []
    columns = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
    ).fetchall()
    for table, column in columns:
        for (value,) in con.execute(f'SELECT "{column}" FROM "{table}"').fetchall():
            if value is not None and CLEAR.search(str(value)):
                found.append((table, column, str(value)))
    return found


def add_users(settings: Settings) -> None:
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        for name, role in (("admin", "hq_admin"), ("analyst", "analyst")):
            users.create(
                conn, brand_id=brand_id, username=name, role=role, password="correct-horse"
            )
    engine.dispose()
