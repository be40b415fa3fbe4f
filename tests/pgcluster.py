"""A throw-away PostgreSQL cluster for the tests, and a fresh schema per test in it.

The cluster is Debian's `postgresql` package run by hand (initdb, pg_ctl) in a temp folder:
no system service, no TCP port (only a unix socket in that folder, so parallel runs and a
server already on the machine do not collide), trust authentication, no fsync.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
SUPERUSER = "postgres"
# initdb refuses to run as root; Debian's package creates this system user.
SYSTEM_USER = "postgres"


class ClusterError(RuntimeError):
    pass


def find_bindir(root: Path = DEBIAN_ROOT) -> Path | None:
    """The bin folder of the newest PostgreSQL installed under `root` (Debian: one folder
    per major version, /usr/lib/postgresql/<version>/bin), or None."""
    found: list[tuple[tuple[int, ...], Path]] = []
    for initdb in root.glob("*/bin/initdb"):
        version = tuple(int(part) for part in re.findall(r"\d+", initdb.parent.parent.name))
        if version:
            found.append((version, initdb.parent))
    # Numeric order: "9.6" is older than "16".
    return max(found)[1] if found else None


class Cluster:
    def __init__(
        self, bindir: Path, root: Path, as_user: list[str], settings: dict[str, str]
    ) -> None:
        self.bindir = bindir
        self.settings = settings
        self.root = root
        self.data = root / "data"
        self.socket_dir = root
        self.log = root / "server.log"
        self._as_user = as_user
        self.url = f"postgresql+psycopg://{SUPERUSER}@/postgres?host={self.socket_dir}"
        self._running = False

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        # cwd: the calling test's folder may be closed to the postgres user, and pg_ctl
        # refuses to start from a folder it cannot read.
        return subprocess.run(
            [*self._as_user, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _fail(self, what: str, result: subprocess.CompletedProcess[str] | None) -> ClusterError:
        output = (result.stdout + result.stderr).strip() if result else ""
        log = self.log_tail()
        return ClusterError(
            f"PostgreSQL-testcluster in {self.root}: {what}"
            + (f"\n--- uitvoer ---\n{output}" if output else "")
            + (f"\n--- serverlog (einde) ---\n{log}" if log else "")
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        initdb = [
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", SUPERUSER,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        try:
            result = self._run(*initdb, timeout=120)
        except subprocess.TimeoutExpired:
            raise self._fail("initdb duurde langer dan 120 s", None) from None
        if result.returncode:
            raise self._fail(f"initdb mislukt (code {result.returncode})", result)
        # pg_ctl hands -o to the server through a shell: quote the values.
        options = " ".join(
            f"-c {name}={shlex.quote(value)}"
            for name, value in (
                ("listen_addresses", ""),
                ("unix_socket_directories", str(self.socket_dir)),
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
                *self.settings.items(),
            )
        )
        start = [
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.log),
            "-o", options,
            "-w", "-t", str(START_TIMEOUT),
            "start",
        ]  # fmt: skip
        try:
            result = self._run(*start, timeout=START_TIMEOUT + 15)
        except subprocess.TimeoutExpired:
            result = None
        self._running = True  # a half-started server is stopped too
        if result is None or result.returncode:
            error = self._fail(
                f"pg_ctl start bleef hangen (langer dan {START_TIMEOUT + 15} s)"
                if result is None
                else f"de server startte niet (binnen {START_TIMEOUT} s; pg_ctl code "
                f"{result.returncode})",
                result,
            )
            self.stop()
            raise error

    def stop(self) -> None:
        """Stop the server and remove its folder; again is a no-op."""
        if self._running:
            self._running = False
            # immediate: the data is thrown away, a clean shutdown buys nothing.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                    "-w", "-t", str(START_TIMEOUT), "stop",
                    timeout=START_TIMEOUT + 15,
                )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def start(bindir: Path | None = None, settings: dict[str, str] | None = None) -> Cluster:
    """Start a cluster in a new temp folder, with server `settings` added; ClusterError
    (with the server log's tail) when it does not come up within START_TIMEOUT seconds."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise ClusterError(f"geen PostgreSQL gevonden in {DEBIAN_ROOT}/*/bin")
    # Under /tmp, not $TMPDIR: the postgres user must be able to reach it, and a unix
    # socket path may be at most ~107 bytes long.
    root = Path(tempfile.mkdtemp(prefix="krimppost-pg-", dir="/tmp"))
    root.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
        as_user = ["runuser", "-u", SYSTEM_USER, "--"]
    cluster = Cluster(bindir, root, as_user, settings or {})
    cluster.start()
    # Also when the session ends without its teardown (an interrupted run).
    atexit.register(cluster.stop)
    return cluster


def with_search_path(url: str, schema: str) -> str:
    """`url` (psycopg driver) whose connections use only `schema`; the schema's name is also
    the application_name, so its connections can be found in pg_stat_activity."""
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    options = parsed.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    return parsed.update_query_dict(
        {
            "options": f"{options} -csearch_path={schema}".strip(),
            "application_name": schema,
        }
    ).render_as_string(hide_password=False)


@contextmanager
def temporary_schema(url: str) -> Iterator[tuple[str, str]]:
    """A new schema t_<random> in the database of `url`: yields (schema, URL that uses it);
    dropped with everything in it afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(
        make_url(url).set(drivername="postgresql+psycopg"),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        yield schema, with_search_path(url, schema)
    finally:
        with admin.connect() as conn:
            # A connection the test left open (a store not closed, a subprocess still
            # running) could hold a lock the DROP waits for: end those first.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": schema},
            )
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
