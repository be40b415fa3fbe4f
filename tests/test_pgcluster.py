"""The PostgreSQL test layer itself (tests/pgcluster.py, the fixtures in conftest.py): a
test on the PostgreSQL leg really gets a schema of its own, shared by every store and
subprocess of that test, and gone afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pgcluster
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from conftest import REPO, STATE_URL_ENV, Project, pg_unavailable
from pipeline.config import load_config
from pipeline.state import StateStore, StoreAddress

postgresql_only = pytest.mark.parametrize("state_backend", ["postgresql"], indirect=True)


def libpq_args(url: str) -> dict[str, Any]:
    """psycopg.connect arguments for the server of an SQLAlchemy URL, without its options:
    a connection that sees the database as it is, not through the test's search_path."""
    parsed = make_url(url)
    args = {
        "host": parsed.query.get("host") or parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    return {k: v for k, v in args.items() if v is not None}


def schema_of(url: str) -> str:
    found = re.search(r"search_path=(\w+)", str(make_url(url).query["options"]))
    assert found, url
    return found.group(1)


def tables_in(pg_cluster: str, schema: str) -> list[str]:
    with psycopg.connect(**libpq_args(pg_cluster)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
    return sorted(name for (name,) in rows)


def test_the_newest_installed_postgresql_is_used(tmp_path: Path) -> None:
    assert pgcluster.find_bindir(tmp_path) is None
    for version in ("9.6", "15", "16"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    (tmp_path / "17" / "bin").mkdir(parents=True)  # a version without initdb: not installed
    assert pgcluster.find_bindir(tmp_path) == tmp_path / "16" / "bin"


@postgresql_only
def test_the_state_url_uses_the_schema_of_the_test(state_backend: str, pg_cluster: str) -> None:
    url = os.environ[STATE_URL_ENV]
    schema = schema_of(url)
    assert schema.startswith("t_")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            assert raw.execute("SHOW search_path").fetchone() == (schema,)
            conn.execute(text("CREATE TABLE probe (n integer)"))
            conn.commit()
    finally:
        engine.dispose()
    # Seen from outside that search_path: the unqualified table went into the schema.
    assert tables_in(pg_cluster, schema) == ["probe"]
    assert "probe" not in tables_in(pg_cluster, "public")


@postgresql_only
def test_two_stores_on_one_url_share_their_rows(
    state_backend: str, pg_cluster: str, tmp_path: Path
) -> None:
    url = os.environ[STATE_URL_ENV]
    target = StoreAddress.postgresql(tmp_path / ".krimppost" / "state.sqlite", url)
    with StateStore(target) as first, StateStore(target) as second:
        assert first.dialect == second.dialect == "postgresql"
        with first.transaction():
            first.set_build_meta({"door": "eerste"})
        with second.transaction():
            second.set_build_meta({"terug": "tweede"})
        assert second.build_meta() == first.build_meta() == {"door": "eerste", "terug": "tweede"}
    # The migrations made the tables in the test's schema, and no SQLite file was made.
    assert "build_meta" in tables_in(pg_cluster, schema_of(url))
    assert "build_meta" not in tables_in(pg_cluster, "public")
    assert not target.path.exists()


def test_a_subprocess_of_the_test_opens_the_same_store(
    state_backend: str, project: Project
) -> None:
    child = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipeline.config import load_config\n"
        "from pipeline.state import StateStore\n"
        "with StateStore.of(load_config(Path(sys.argv[1]))) as store:\n"
        "    with store.transaction():\n"
        "        store.set_build_meta({'van': 'kind'})\n"
        "    print(store.dialect)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(project.root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == state_backend
    with StateStore.of(load_config(project.root)) as store:
        assert store.dialect == state_backend
        assert store.build_meta()["van"] == "kind"


def test_the_schema_is_dropped_even_with_a_transaction_left_open(pg_cluster: str) -> None:
    with pgcluster.temporary_schema(pg_cluster) as (schema, url):
        engine = create_engine(url, poolclass=NullPool)
        left_open = engine.connect()
        left_open.execute(text("CREATE TABLE held (n integer)"))
        left_open.execute(text("INSERT INTO held VALUES (1)"))  # idle in transaction, locked
    with psycopg.connect(**libpq_args(pg_cluster)) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    assert found == (0,)
    # Its server side was ended on purpose: closing it may report that.
    with contextlib.suppress(Exception):
        left_open.close()
    engine.dispose()


def test_a_server_that_does_not_start_says_why() -> None:
    bindir = pgcluster.find_bindir()
    if bindir is None:
        pg_unavailable("PostgreSQL niet geïnstalleerd (apt-get install postgresql)")
    with pytest.raises(pgcluster.ClusterError) as failure:
        pgcluster.start(bindir, settings={"max_connections": "-5"})
    message = str(failure.value)
    assert "de server startte niet" in message
    assert "max_connections" in message  # from the server log
    root = re.search(r"in (/tmp/krimppost-pg-\w+)", message)
    assert root and not Path(root.group(1)).exists()  # nothing left behind


def test_missing_postgresql_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("KRIMPPOST_REQUIRE_PG", raising=False)
    with pytest.raises(pytest.skip.Exception):
        pg_unavailable("geen PostgreSQL")
    monkeypatch.setenv("KRIMPPOST_REQUIRE_PG", "1")
    with pytest.raises(pytest.fail.Exception, match="vereist"):
        pg_unavailable("geen PostgreSQL")
