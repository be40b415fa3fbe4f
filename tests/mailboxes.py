"""The `bounce_mailbox` fixture: the returns mailbox as a Maildir and as an IMAP folder on
a real Dovecot (tests/imapserver.py), the same five calls for both."""

from __future__ import annotations

import imaplib
import itertools
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import imapserver
import pytest

_names = itertools.count()


def imap_required() -> bool:
    return os.environ.get("KRIMPPOST_REQUIRE_IMAP") == "1"


class MaildirBox:
    kind = "maildir"

    def options(self, root: Path) -> dict[str, str]:
        self.dir = root / "retour"
        for sub in ("new", "cur", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        return {"mailbox": "maildir:retour"}

    def deliver(self, data: bytes) -> None:
        (self.dir / "new" / f"{next(_names):08d}.krimppost-test").write_bytes(data)

    def _read(self, folder: Path) -> list[bytes]:
        files = [
            p for sub in ("new", "cur") if (folder / sub).is_dir() for p in (folder / sub).iterdir()
        ]
        return [p.read_bytes() for p in sorted(files, key=lambda p: p.name)]

    def left(self) -> list[bytes]:
        return self._read(self.dir)

    def processed(self) -> list[bytes]:
        return self._read(self.dir / ".verwerkt")


class ImapBox:
    kind = "imap"

    def __init__(self, server: imapserver.ImapServer) -> None:
        self.server = server
        self.context = ssl.create_default_context(cafile=str(server.ca_file))
        for folder in ("INBOX", "verwerkt"):  # every test starts empty
            with self._session(folder, readonly=False) as conn:
                if conn is not None and conn.search(None, "ALL")[1][0]:
                    conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                    conn.expunge()

    def _session(self, folder: str, readonly: bool = True):  # type: ignore[no-untyped-def]
        box = self

        class Session:
            def __enter__(self) -> imaplib.IMAP4_SSL | None:
                self.conn = imaplib.IMAP4_SSL(
                    "127.0.0.1", box.server.port, ssl_context=box.context, timeout=10
                )
                self.conn.login(imapserver.USER, imapserver.PASSWORD)
                status, _ = self.conn.select(f'"{folder}"', readonly=readonly)
                return self.conn if status == "OK" else None

            def __exit__(self, *exc: object) -> None:
                if self.conn.state == "SELECTED":
                    self.conn.close()
                self.conn.logout()

        return Session()

    def options(self, root: Path) -> dict[str, str]:
        user = imapserver.USER.replace("@", "%40")
        return {
            "mailbox": f"imaps://{user}@127.0.0.1:{self.server.port}/INBOX",
            "ca_file": str(self.server.ca_file),
        }

    def deliver(self, data: bytes) -> None:
        with self._session("INBOX") as conn:
            assert conn is not None
            status, _ = conn.append("INBOX", None, None, data)
            assert status == "OK"

    def _read(self, folder: str) -> list[bytes]:
        with self._session(folder) as conn:
            if conn is None:
                return []
            _, found = conn.uid("search", None, "ALL")
            out = []
            for uid in found[0].split():
                _, data = conn.uid("fetch", uid, "(BODY.PEEK[])")
                out.append(next(part[1] for part in data if isinstance(part, tuple)))
            return out

    def left(self) -> list[bytes]:
        return self._read("INBOX")

    def processed(self) -> list[bytes]:
        return self._read("verwerkt")

    def seen_flags(self) -> list[str]:
        with self._session("INBOX") as conn:
            assert conn is not None
            _, data = conn.fetch("1:*", "(FLAGS)")
            return [d.decode() for d in data if d]


@pytest.fixture(scope="session")
def imap_server() -> Iterator[imapserver.ImapServer]:
    if not imapserver.available():
        reason = "Dovecot (Debian-pakket dovecot-imapd) is niet geïnstalleerd"
        if imap_required():
            pytest.fail(reason)
        pytest.skip(reason)
    server = imapserver.ImapServer()
    yield server
    server.stop()


@pytest.fixture(params=["maildir", "imap"])
def bounce_mailbox(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
):
    if request.param == "maildir":
        return MaildirBox()
    server = request.getfixturevalue("imap_server")
    monkeypatch.setenv("KRIMPPOST_BOUNCE_PASSWORD", imapserver.PASSWORD)
    return ImapBox(server)
