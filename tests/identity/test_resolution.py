"""Identity resolution (SPEC §4) on hand-built records, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siyu.config import Settings
from siyu.customers import service as customer_service
from siyu.identity import service as identity_service
from tests.factories import engine_for, run_import, scalar, write_dir

RECORDS = "record_id,source,phone,unionid,member_no,tmall_nick\n"


def customer_of(settings: Settings, key: str) -> int:
    engine, brand_id = engine_for(settings)
    with engine.connect() as conn:
        cid, _ = customer_service.resolve_key_or_raise(conn, brand_id=brand_id, key=key)
    engine.dispose()
    return cid


def test_links_are_transitive(settings: Settings, tmp_path: Path) -> None:
    # A–B share a phone (in two spellings), B–C share a unionid: one customer.
    d = write_dir(
        tmp_path / "in",
        {
            "records.csv": RECORDS
            + (
                "A,pos,13800138000,,M1,\n"
                "B,mp,+86 138-0013-8000,U1,,\n"
                "C,wecom,,U1,,\n"
                "D,tmall,,,,nick\n"
            )
        },
    )
    summary = run_import(settings, d)
    assert summary.identity is not None and summary.identity.customers == 2
    a = customer_of(settings, "member_no:M1")
    assert customer_of(settings, "unionid:U1") == a
    assert customer_of(settings, "phone:008613800138000") == a
    assert customer_of(settings, "tmall_nick:nick") != a
    engine, brand_id = engine_for(settings)
    with engine.connect() as conn:
        view = customer_service.get_view(conn, brand_id=brand_id, customer_id=a)
    assert [(link.via) for link in view.links] == ["phone:+8613800138000", "unionid:U1"]


def test_placeholder_phone_is_quarantined_and_merges_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    till = "".join(f"P{i},pos,13800000000,,M{i},\n" for i in range(6))  # 6 > K = 5
    d = write_dir(tmp_path / "in", {"records.csv": RECORDS + till + "W,mp,13800000000,U9,,\n"})
    summary = run_import(settings, d)
    assert summary.identity is not None
    assert summary.identity.customers == 7
    assert summary.identity.quarantined == 1
    engine, brand_id = engine_for(settings)
    with engine.connect() as conn:  # what `siyu identity quarantined` lists (value opened)
        listed = identity_service.quarantined(conn, brand_id=brand_id)
    engine.dispose()
    assert [(r.value, r.source, r.record_count) for r in listed] == [
        ("+8613800000000", "pos", 6),
        ("+8613800000000", "mp", 1),
    ]
    with pytest.raises(customer_service.CustomerNotFound, match="quarantined"):
        customer_of(settings, "phone:13800000000")


def test_five_records_sharing_a_value_still_merge(settings: Settings, tmp_path: Path) -> None:
    five = "".join(f"P{i},pos,13800000000,,M{i},\n" for i in range(5))  # exactly K: allowed
    summary = run_import(settings, write_dir(tmp_path / "in", {"records.csv": RECORDS + five}))
    assert summary.identity is not None and summary.identity.customers == 1


def test_unmerge_splits_and_relink_restores(settings: Settings, tmp_path: Path) -> None:
    d = write_dir(
        tmp_path / "in",
        {
            "records.csv": RECORDS
            + "A,pos,13800138000,,M1,\nB,mp,13800138000,U1,,\nC,wecom,,U1,,\n",
            "orders.csv": "order_id,platform,id_type,id_value,created_at,amount_fen,status\n"
            "O1,pos,member_no,M1,2025-07-01T10:00:00+08:00,3000,paid\n"
            "O2,mp,unionid,U1,2025-07-02T10:00:00+08:00,5000,paid\n",
        },
    )
    run_import(settings, d)
    original = customer_of(settings, "member_no:M1")
    assert customer_of(settings, "unionid:U1") == original
    engine, brand_id = engine_for(settings)
    result = identity_service.unmerge(
        engine, brand_id=brand_id, id_type="phone", value="+8613800138000", k_guard=5
    )
    assert result.split == 1
    a, c = customer_of(settings, "member_no:M1"), customer_of(settings, "unionid:U1")
    assert c == original and a != original  # the larger part (B, C) keeps the id
    with engine.connect() as conn:
        assert (
            customer_service.get_view(conn, brand_id=brand_id, customer_id=a).orders.gmv_fen == 3000
        )
        assert (
            customer_service.get_view(conn, brand_id=brand_id, customer_id=c).orders.gmv_fen == 5000
        )
    result = identity_service.relink(
        engine, brand_id=brand_id, id_type="phone", value="+8613800138000", k_guard=5
    )
    assert result.merged == 1
    assert customer_of(settings, "member_no:M1") == original
    assert customer_of(settings, str(a)) == original  # the split-off id now redirects
    with engine.connect() as conn:
        assert (
            customer_service.get_view(conn, brand_id=brand_id, customer_id=original).orders.gmv_fen
            == 8000
        )
    engine.dispose()


def test_new_record_bridges_two_customers_oldest_id_survives(
    settings: Settings, tmp_path: Path
) -> None:
    run_import(
        settings, write_dir(tmp_path / "one", {"records.csv": RECORDS + "A,pos,13800138000,,M1,\n"})
    )
    run_import(settings, write_dir(tmp_path / "two", {"records.csv": RECORDS + "C,wecom,,U1,,\n"}))
    a, c = customer_of(settings, "member_no:M1"), customer_of(settings, "unionid:U1")
    assert a < c
    summary = run_import(
        settings,
        write_dir(tmp_path / "three", {"records.csv": RECORDS + "B,mp,13800138000,U1,,\n"}),
    )
    assert summary.identity is not None and summary.identity.merged == 1
    assert customer_of(settings, "unionid:U1") == a
    assert customer_of(settings, str(c)) == a  # merged-away id redirects
    assert scalar(settings, "SELECT merged_into_id FROM customer WHERE id = :c", c=c) == a
    assert scalar(settings, "SELECT count(*) FROM customer_merge WHERE kind = 'merge'") == 1


def test_facts_naming_unknown_identifiers_create_customers(
    settings: Settings, tmp_path: Path
) -> None:
    d = write_dir(
        tmp_path / "in",
        {
            "orders.csv": "order_id,platform,id_type,id_value,created_at,amount_fen,status\n"
            "O1,tmall,tmall_nick,newbie,2025-07-01T10:00:00+08:00,3000,paid\n"
            "O2,pos,,,2025-07-01T10:00:00+08:00,1000,paid\n"
        },
    )
    summary = run_import(settings, d)
    assert summary.identity is not None and summary.identity.customers == 1  # anonymous stays so
    assert customer_of(settings, "tmall_nick:newbie") > 0


def test_a_full_pass_ignores_a_record_committed_while_it_was_reading(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL reads each statement as committed when it runs: a WeCom event or an API ingest
    committed between the pass's read of records and its read of pairs shows up only among the
    pairs. The pass must resolve the rest (the next one takes that record), not crash."""
    d = write_dir(tmp_path / "in", {"records.csv": RECORDS + "A,pos,13800138000,,M1,\n"
                                                          "B,mp,13800138000,U1,,\n"})  # fmt: skip
    run_import(settings, d)
    real = identity_service.fetch_int_columns

    def pairs_see_a_late_record(conn, sql, *, brand_id, ncols):  # type: ignore[no-untyped-def]
        columns = real(conn, sql, brand_id=brand_id, ncols=ncols)
        if "FROM record_identity" in sql and len(columns[0]):  # a record the pass never read
            late = columns[0].max() + 1_000
            columns = [np.append(columns[0], late), np.append(columns[1], columns[1][0])]
        return columns

    monkeypatch.setattr(identity_service, "fetch_int_columns", pairs_see_a_late_record)
    engine, brand_id = engine_for(settings)
    result = identity_service.resolve(engine, brand_id=brand_id, full=True)
    engine.dispose()
    assert result.full and result.resolved == 2 and result.customers == 1
    assert customer_of(settings, "unionid:U1") == customer_of(settings, "member_no:M1")


def test_profile_takes_each_field_from_the_best_source_then_the_latest(
    settings: Settings, tmp_path: Path
) -> None:
    """SPEC §4 profile merge, per field: the first non-null value by source priority (POS, then
    mini-program, WeCom, …), ties by the latest record. A customer of one record has its
    values; a value another record lacks is taken from whichever has it."""
    header = "record_id,source,phone,unionid,name,gender,city\n"
    first = write_dir(
        tmp_path / "a",
        {"records.csv": header + "W1,wecom,13800000001,,微信名,female,杭州\n"
         "M1,mp,13800000001,U1,,,北京\n"
         "T1,tmall,,U1,淘宝名,,\n"
         "S1,tmall,13800000009,,独行,male,深圳\n"},
    )  # fmt: skip
    run_import(settings, first)
    one = customer_of(settings, "phone:13800000001")
    sole = customer_of(settings, "phone:13800000009")
    engine, brand_id = engine_for(settings)

    def profile(cid: int) -> tuple[str | None, str | None, str | None]:
        with engine.connect() as conn:
            v = customer_service.get_view(conn, brand_id=brand_id, customer_id=cid)
        return v.name, v.gender, v.city

    assert profile(one) == ("微信名", "female", "北京")  # wecom over tmall; mp over wecom
    assert profile(sole) == ("独行", "male", "深圳")
    # a POS record joins: it outranks every other source, field by field where it has a value
    later = write_dir(
        tmp_path / "b",
        {"records.csv": header + "P1,pos,13800000001,,门店名,,上海\n"
         "T2,tmall,13800000009,,新昵称,,\n"},
    )  # fmt: skip
    run_import(settings, later)
    assert profile(one) == ("门店名", "female", "上海")
    assert profile(sole) == ("新昵称", "male", "深圳")  # the same source: the latest record wins
    engine.dispose()


def test_a_brand_pass_leaves_another_brand_sharing_the_store_alone(
    settings: Settings, tmp_path: Path
) -> None:
    # The other brand's records carry the same values; its one record is under a tenth of the
    # store, so the big brand's full pass reads every pair of the store and must drop its.
    other = settings.model_copy(update={"brand_code": "other", "brand_name": "Other"})
    run_import(
        other, write_dir(tmp_path / "b", {"records.csv": RECORDS + "X,pos,13800138000,U1,M1,\n"})
    )
    rows = "".join(f"P{i},pos,1380013{i:04d},,M{i},\n" for i in range(20))
    summary = run_import(
        settings, write_dir(tmp_path / "a", {"records.csv": RECORDS + rows + "Q,mp,,U1,M1,\n"})
    )
    assert summary.identity is not None and summary.identity.customers == 20
    theirs = customer_of(other, "unionid:U1")
    engine, brand_id = engine_for(settings)
    again = identity_service.resolve(engine, brand_id=brand_id, k_guard=5, full=True)
    engine.dispose()
    assert (again.records, again.customers, again.created, again.merged) == (21, 20, 0, 0)
    assert customer_of(settings, "unionid:U1") == customer_of(settings, "member_no:M1")
    assert customer_of(other, "phone:13800138000") == theirs == customer_of(other, "member_no:M1")
    assert scalar(other, "SELECT count(*) FROM customer WHERE brand_id = "
                  "(SELECT id FROM brand WHERE code = 'other')") == 1  # fmt: skip
