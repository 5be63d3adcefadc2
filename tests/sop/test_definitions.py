"""Definitions: versioned import, no-op re-import, errors that name their path; the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.sop import service
from siyu.sop.commands import playbook_paths
from siyu.sop.definition import DefinitionError, validate
from tests.factories import run_import, write_dir
from tests.sop import brand
from tests.sop.conftest import World
from tests.sop.test_triggers import WELCOME


def errors(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as e:
        validate(service.load_yaml(text))
    return e.value.errors


def test_errors_name_the_path() -> None:
    bad = WELCOME.replace("{{ customer.name }}", "{{ customer.nmae }}")
    assert errors(bad) == [
        "steps[0].send.variants[0].text: undefined variable 'customer.nmae' "
        "(did you mean 'customer.name'?)"
    ]
    assert errors(WELCOME.replace("friend_added", "friend_add"))[0].startswith(
        "trigger.event.type: unknown event 'friend_add'"
    )
    assert errors(WELCOME.replace("{channel: QR1}", "{segment: x}")) == [
        "trigger.event: filter 'segment' does not apply to friend_added (filters: channel, staff)"
    ]
    sched = WELCOME.replace("{event: {type: friend_added, filter: {channel: QR1}}}",
                            '{schedule: "61 8 * * *"}')  # fmt: skip
    assert errors(sched) == [
        "trigger.schedule: invalid cron expression '61 8 * * *' (five fields: m h dom mon dow)"
    ]
    branch = WELCOME + "  - branch: {when: {field: cty, op: eq, value: x}, then: nowhere}\n"
    assert errors(branch) == [
        "steps[1].branch.when: rule.field: unknown field 'cty' (did you mean 'city'?)"
    ]
    assert errors(
        WELCOME + "  - branch: {when: {field: city, op: eq, value: x}, then: nowhere}\n"
    ) == ["steps[1].branch: no step with id 'nowhere'"]
    assert errors(WELCOME + "  - wait: {until: '25:00'}\n") == [
        "steps[1].wait.until: expected a time of day HH:MM, got '25:00'"
    ]
    assert (
        errors(WELCOME.replace("variants:", "variantz:"))[0]
        == "steps[0].send.variants: Field required"
    )
    assert errors("key: x\nname: [unclosed\n")[0].startswith("YAML, line 3 column 1:")
    assert errors("- just a list") == [
        "(top): expected a mapping of key, name, trigger, steps…, got list"
    ]


def test_import_versions(world: World) -> None:
    world.put(WELCOME)
    with world.engine.begin() as conn:
        same = service.import_definition(conn, brand_id=world.brand_id,
                                         raw=service.load_yaml(WELCOME))  # fmt: skip
        changed = service.import_definition(
            conn, brand_id=world.brand_id, raw=service.load_yaml(WELCOME.replace("您好", "你好"))
        )
        cur = service.get(conn, brand_id=world.brand_id, key="welcome")
    assert (same.version, same.changed) == (1, False)
    assert (changed.version, changed.changed) == (2, True)
    assert cur.sop.version == 2 and "你好" in cur.definition.steps[0].send.variants[0].text  # type: ignore[union-attr]
    assert world.sql("SELECT version FROM sop_version ORDER BY version") == [(1,), (2,)]
    # a bad definition stores nothing and keeps version 2
    with pytest.raises(DefinitionError), world.engine.begin() as conn:
        service.import_definition(conn, brand_id=world.brand_id,
                                  raw=service.load_yaml(WELCOME.replace("wecom", "fax")))  # fmt: skip
    assert world.sql("SELECT count(*) FROM sop_version") == [(2,)]


def test_every_playbook_validates_and_round_trips() -> None:
    names = {p.stem for p in playbook_paths()}
    assert {"coffee-0830-commute", "coffee-1200-flash", "coffee-1500-snack",
            "coffee-2000-ecommerce", "appliance-filter-reminder", "consultative-path",
            "birthday", "membership-anniversary"} <= names  # fmt: skip
    for p in playbook_paths():
        d = validate(service.load_yaml(p.read_text(encoding="utf-8")))
        assert validate(service.load_yaml(service.to_yaml(d))) == d


def test_sop_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert (
        run_import(Settings(data_dir=data), write_dir(tmp_path / "in", brand.FILES)).rejected == 0
    )
    runner = CliRunner()

    def siyu(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["--data-dir", str(data), *args])

    good = tmp_path / "welcome.yaml"
    good.write_text(WELCOME, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(WELCOME.replace("customer.name", "customer.nmae"), encoding="utf-8")
    r = siyu("sop", "import", str(bad))
    assert r.exit_code == 2 and "steps[0].send.variants[0].text: undefined variable" in r.output
    assert "Traceback" not in r.output
    assert "welcome: version 1" in siyu("sop", "import", str(good)).output
    assert "welcome: unchanged (version 1)" in siyu("sop", "import", str(good)).output
    r = siyu("sop", "import", "--playbooks")
    assert r.exit_code == 0 and "coffee-0830-commute: version 1" in r.output
    exported = siyu("sop", "export", "welcome").output
    again = tmp_path / "again.yaml"
    again.write_text(exported, encoding="utf-8")
    assert "unchanged" in siyu("sop", "import", str(again)).output
    assert "draft" in siyu("sop", "list").output
    assert siyu("sop", "activate", "welcome").exit_code == 0
    assert "active, version 1" in siyu("sop", "show", "welcome").output
    r = siyu("sop", "show", "nope")
    assert r.exit_code == 2 and "no SOP with key 'nope'" in r.output
    assert siyu("sop", "tick").exit_code == 0
    r = siyu("sop", "dry-run", "coffee-1200-flash")
    assert r.exit_code == 0 and "静安店限量50杯" in r.output, r.output
    assert "journeys" in siyu("sop", "report", "welcome").output
    assert siyu("tasks", "list").exit_code == 0
    assert siyu("tasks", "done", "99").exit_code == 2


def test_an_unknown_segment_is_refused_on_save(world: World) -> None:
    with pytest.raises(DefinitionError) as e, world.engine.begin() as conn:
        service.import_definition(conn, brand_id=world.brand_id,
                                  raw=service.load_yaml(WELCOME + "audience: {segment: 咖啡控}\n"))  # fmt: skip
    assert e.value.errors == ["audience.segment: no segment named '咖啡控' (none saved yet)"]
