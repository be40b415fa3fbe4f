"""`krimppost subscribers`: normalisation, consent records, tokens, import, removal."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import storesql
from click.testing import CliRunner
from sqlalchemy import text

from conftest import Project
from pipeline.commands.subscribers import subscribers
from pipeline.config import load_config
from pipeline.delivery.subscribers import (
    ALL_TRACKS,
    AddressError,
    SubscriberStore,
    TrackError,
    normalise,
    parse_tracks,
)
from pipeline.state import StateStore, StoreAddress

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def run(project: Project, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(subscribers, [*args, "--root", str(project.root)])
    return result.exit_code, result.stdout, result.stderr


def rows(project: Project, sql: str, *args: object) -> list[tuple]:
    return storesql.rows(project.root, sql, *args)


def store_of(project: Project):  # type: ignore[no-untyped-def]
    config = load_config(project.root)
    state = StateStore.of(config)
    return state, SubscriberStore(state, config)


def test_normalise() -> None:
    a = normalise("  Jan.Jansen@Example.NL ")
    assert (a.email, a.key) == ("Jan.Jansen@example.nl", "jan.jansen@example.nl")
    assert normalise("lezer@bücher.example.nl").email == "lezer@bücher.example.nl"
    for bad, reason in [
        ("geen-apenstaart", "één @"),
        ("iemand@localhost", "domein"),
        ("Jan <jan@example.nl>", "zonder naam"),
        ("", "leeg"),
        ("twee woorden@example.nl", "voor de @"),
    ]:
        with pytest.raises(AddressError, match=reason):
            normalise(bad)


def test_parse_tracks(project: Project) -> None:
    config = load_config(project.root)
    assert parse_tracks(None, config) == ALL_TRACKS
    assert parse_tracks("", config) == ALL_TRACKS
    assert parse_tracks("energietransitie; wrb", config) == ",wrb,energietransitie,"
    assert parse_tracks(["woningmarkt"], config) == ",woningmarkt,"
    with pytest.raises(TrackError, match="onbekend traject 'wonen'"):
        parse_tracks("wrb,wonen", config)


def test_add_records_consent_and_a_short_unguessable_token(project: Project) -> None:
    code, out, _ = run(project, "add", "Lezer@Example.nl", "--tracks", "wrb,woningmarkt")
    assert code == 0 and "toegevoegd" in out
    run(project, "add", "tweede@example.nl")
    found = rows(
        project,
        "SELECT email, status, tracks, token, source, consented_at, consent_version, confirmed_at"
        " FROM subscribers ORDER BY id",
    )
    assert [r[:3] for r in found] == [
        ("Lezer@example.nl", "active", ",wrb,woningmarkt,"),
        ("tweede@example.nl", "active", "*"),
    ]
    for _, _, _, token, source, consented, version, confirmed in found:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token)  # 128 bits, URL-safe
        assert source == "beheerder" and version == "2026-11" and confirmed is None
        assert datetime.fromisoformat(consented) > datetime.now(UTC) - timedelta(minutes=1)
    assert found[0][3] != found[1][3]
    # the same address in another case is the same subscriber
    code, out, _ = run(project, "add", "LEZER@example.NL")
    assert code == 0 and "al actief" in out
    code, out, _ = run(project, "add", "lezer@example.nl", "--tracks", "energietransitie")
    assert "bijgewerkt" in out
    assert rows(
        project,
        "SELECT COUNT(*), MIN(tracks) FROM subscribers WHERE email_key = ?",
        "lezer@example.nl",
    ) == [(1, ",energietransitie,")]


def test_add_rejects_bad_input_as_usage_errors(project: Project) -> None:
    code, out, err = run(project, "add", "geen-adres")
    assert code == 2 and "ongeldig e-mailadres" in out + err
    code, out, err = run(project, "add", "a@example.nl", "--tracks", "wonen")
    assert code == 2 and "onbekend traject" in out + err


def test_import_reports_bad_rows_by_line_imports_the_rest_and_is_idempotent(
    project: Project, tmp_path: Path
) -> None:
    path = tmp_path / "lijst.csv"
    path.write_text(
        "email,tracks\n"
        "een@example.nl,wrb\n"
        "geen-adres,wrb\n"
        "\n"
        'twee@example.nl,"woningmarkt,energietransitie"\n'
        "drie@example.nl,wonen\n"
        "vier@example.nl,woningmarkt;wrb\n"
        "EEN@example.nl,energietransitie\n"
        "vijf@example.nl\n",
        encoding="utf-8",
    )
    code, out, err = run(project, "import", str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}:3: ongeldig e-mailadres 'geen-adres': het adres moet één @ bevatten",
        f"{path}:6: onbekend traject 'wonen' (bekend: wrb, woningmarkt, energietransitie)",
    ]
    assert "4 toegevoegd, 1 al aanwezig" in out
    assert dict(rows(project, "SELECT email, tracks FROM subscribers")) == {
        "een@example.nl": ",wrb,",
        "twee@example.nl": ",woningmarkt,energietransitie,",
        "vier@example.nl": ",wrb,woningmarkt,",
        "vijf@example.nl": "*",
    }
    before = rows(project, "SELECT * FROM subscribers ORDER BY id")
    code, out, _ = run(project, "import", str(path))
    assert "0 toegevoegd, 5 al aanwezig" in out
    assert rows(project, "SELECT * FROM subscribers ORDER BY id") == before


def test_import_semicolons_bom_and_no_header(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffeen@example.nl;wrb\r\ntwee@example.nl;\r\n".encode())
    code, out, _ = run(project, "import", str(path))
    assert code == 0 and "2 toegevoegd" in out
    other_order = tmp_path / "volgorde.csv"
    other_order.write_text("naam,trajecten,e-mailadres\nDrie,wrb,drie@example.nl\n")
    code, out, _ = run(project, "import", str(other_order))
    assert code == 0 and "1 toegevoegd" in out
    assert rows(project, "SELECT tracks FROM subscribers WHERE email = 'drie@example.nl'") == [
        (",wrb,",)
    ]
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("email\nj\xe9@example.nl\n".encode("latin-1"))
    code, _, err = run(project, "import", str(bad))
    assert code == 1 and f"{bad}:2: geen geldige UTF-8" in err


def test_import_never_reactivates_unsubscribed_bounced_or_removed(
    project: Project, tmp_path: Path
) -> None:
    state, store = store_of(project)
    with state:
        for address in ("weg@example.nl", "stuk@example.nl", "gewist@example.nl"):
            store.add(address, None, NOW)
        token = rows(project, "SELECT token FROM subscribers WHERE email = 'weg@example.nl'")[0][0]
        store.unsubscribe(token, NOW, "test")
        state.conn.execute(
            text("UPDATE subscribers SET status = 'bounced' WHERE email = 'stuk@example.nl'")
        )
        store.remove("gewist@example.nl", NOW)
    path = tmp_path / "oud.csv"
    path.write_text("weg@example.nl\nstuk@example.nl\nGEWIST@example.nl\nnieuw@example.nl\n")
    code, out, _ = run(project, "import", str(path))
    assert code == 0 and "1 toegevoegd, 2 al aanwezig" in out and "1 overgeslagen" in out
    assert dict(rows(project, "SELECT email, status FROM subscribers")) == {
        "weg@example.nl": "unsubscribed",
        "stuk@example.nl": "bounced",
        "nieuw@example.nl": "active",
    }
    # `add` refuses too, unless --force (the person's own request)
    code, out, err = run(project, "add", "weg@example.nl")
    assert code == 1 and "--force" in out + err
    code, out, err = run(project, "add", "gewist@example.nl")
    assert code == 1 and "onderdrukkingslijst" in out + err
    code, out, _ = run(project, "add", "gewist@example.nl", "--force")
    assert code == 0
    assert rows(project, "SELECT COUNT(*) FROM suppressions") == [(0,)]


def test_remove_erases_personal_data_and_keeps_a_keyed_hash(project: Project) -> None:
    run(project, "add", "Privé@example.nl", "--tracks", "wrb")
    code, out, _ = run(project, "remove", "privé@EXAMPLE.nl")
    assert code == 0 and "gewist" in out
    assert rows(project, "SELECT COUNT(*) FROM subscribers") == [(0,)]
    (digest,) = rows(project, "SELECT digest FROM suppressions")[0]
    plain = hashlib.sha256("privé@example.nl".encode()).hexdigest()
    assert digest != plain and re.fullmatch(r"[0-9a-f]{64}", digest)
    # nothing of the address is left in the database file (SQLite: the file itself)
    config = load_config(project.root)
    if StoreAddress.of(config).is_sqlite:
        with StateStore.of(config) as state:
            state.conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            state.conn.exec_driver_sql("VACUUM")
        data = config.path(config.state.path).read_bytes()
        assert "privé".encode() not in data and b"priv" not in data
    else:
        found = storesql.query(
            project.root, "SELECT COUNT(*) FROM subscribers WHERE email LIKE '%priv%'"
        )
        assert found == [(0,)]
    # removing an unknown address still suppresses it
    code, out, _ = run(project, "remove", "nooit@example.nl")
    assert code == 0 and "niet gevonden" in out
    assert rows(project, "SELECT COUNT(*) FROM suppressions") == [(2,)]


def test_list_and_export(project: Project, tmp_path: Path) -> None:
    run(project, "add", "een@example.nl", "--tracks", "wrb,energietransitie")
    run(project, "add", "twee@example.nl")
    state, store = store_of(project)
    with state:
        store.request("drie@example.nl", ",wrb,", NOW)
    code, out, _ = run(project, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("een@example.nl") and "actief" in lines[0]
    assert "wrb,energietransitie" in lines[0] and "alle" in lines[1]
    assert "wacht op bevestiging" in lines[2]
    assert lines[-1] == (
        "3 abonnees: 1 wacht op bevestiging, 2 actief, 0 afgemeld, 0 onbestelbaar; "
        "0 op de onderdrukkingslijst"
    )
    code, out, _ = run(project, "list", "--status", "pending")
    assert out.splitlines()[0].startswith("drie@example.nl")

    code, out, _ = run(project, "export")
    exported = list(csv.DictReader(io.StringIO(out)))
    assert [r["email"] for r in exported] == [
        "een@example.nl",
        "twee@example.nl",
        "drie@example.nl",
    ]
    assert exported[0]["tracks"] == "wrb;energietransitie" and exported[1]["tracks"] == ""
    assert exported[0]["source"] == "beheerder" and exported[0]["consent_version"] == "2026-11"
    assert exported[2]["status"] == "pending"
    target = tmp_path / "uit.csv"
    code, _, err = run(project, "export", "-o", str(target))
    assert code == 0 and "3 abonnees" in err
    # an export imported into another project adds only the active ones
    other = Project(tmp_path / "ander")
    with pytest.MonkeyPatch.context() as env:  # its own store, not this test's database
        env.delenv("KRIMPPOST_STATE_URL", raising=False)
        code, out, _ = run(other, "import", str(target))
        assert code == 0 and "2 toegevoegd" in out and "1 overgeslagen" in out
        assert dict(rows(other, "SELECT email, tracks FROM subscribers")) == {
            "een@example.nl": ",wrb,energietransitie,",
            "twee@example.nl": "*",
        }


def test_web_request_confirm_expiry_and_unsubscribe(project: Project) -> None:
    state, store = store_of(project)
    with state:
        address, confirm = store.request("nieuw@example.nl", ",wrb,", NOW)
        assert address == "nieuw@example.nl"
        assert store.request("nieuw@example.nl", ",wrb,", NOW + timedelta(minutes=1)) is None
        sub = store.confirm(confirm, NOW + timedelta(days=1))
        assert sub is not None and sub.status == "active" and sub.tracks == ",wrb,"
        assert sub.source == "webformulier" and sub.consented_at == NOW
        assert sub.confirmed_at == NOW + timedelta(days=1)
        assert store.confirm(confirm, NOW + timedelta(days=2)) is not None  # twice: fine
        assert store.confirm("x" * 22, NOW) is None
        gone = store.unsubscribe(sub.token, NOW + timedelta(days=3), "one-click")
        assert gone is not None and gone.status == "unsubscribed"
        assert store.confirm(confirm, NOW + timedelta(days=4)) is None  # no way back by link
        # an expired request: the never-confirmed new address is erased
        _, late = store.request("laat@example.nl", "*", NOW)
        assert store.confirm(late, NOW + timedelta(days=8)) is None
        assert store.purge_expired(NOW + timedelta(days=8)) == 1
        assert store.find(normalise("laat@example.nl")) is None
        # a suppressed address gets nothing from the form
        store.remove("stil@example.nl", NOW)
        assert store.request("stil@example.nl", "*", NOW) is None
