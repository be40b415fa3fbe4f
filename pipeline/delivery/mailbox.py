"""The returns mailbox of `[bounces] mailbox`: a local Maildir or an IMAP folder over TLS.

Both are read the same way: `messages()` lists every message without changing anything
(IMAP: `BODY.PEEK[]`, so no `\\Seen` flag), and `processed(key)` moves one to the folder
`verwerkt` once its decision is committed. A message over MAX_MESSAGE bytes, or a Maildir
entry that is a symlink, is not read: it stays, and a line in `skipped` says so.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import socket
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from pipeline.config import CONFIG_NAME, Config
from pipeline.errors import KrimppostError, Problem

MAX_MESSAGE = 10 * 1024 * 1024
DONE_FOLDER = "verwerkt"
PASSWORD_ENV = "KRIMPPOST_BOUNCE_PASSWORD"
TIMEOUT = 30.0


@dataclass(frozen=True)
class Message:
    key: str  # a Maildir file (`new/…`), an IMAP UID
    data: bytes


class Mailbox(Protocol):
    skipped: list[str]

    def __enter__(self) -> Mailbox: ...

    def __exit__(self, *exc: object) -> None: ...

    def messages(self) -> Iterator[Message]: ...

    def processed(self, key: str) -> None: ...


def _fail(config: Config, message: str) -> KrimppostError:
    return KrimppostError([Problem(CONFIG_NAME, config.line("bounces", "mailbox"), message)])


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB".replace(".", ",")


# Maildir ---------------------------------------------------------------------------------


@dataclass
class Maildir:
    root: Path
    skipped: list[str] = field(default_factory=list)

    def __enter__(self) -> Maildir:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def messages(self) -> Iterator[Message]:
        found = []
        for sub in ("new", "cur"):
            with os.scandir(self.root / sub) as entries:
                found += [(entry, sub) for entry in entries if not entry.name.startswith(".")]
        # Maildir names start with the delivery time: oldest first
        for entry, sub in sorted(found, key=lambda f: f[0].name):
            key = f"{sub}/{entry.name}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                self.skipped.append(f"{key}: symbolische link, niet gevolgd")
            elif not stat.S_ISREG(info.st_mode):
                continue
            elif info.st_size > MAX_MESSAGE:
                self.skipped.append(f"{key}: te groot ({_size(info.st_size)}), blijft staan")
            else:
                data = self._read(entry.path, key)
                if data is not None:
                    yield Message(key, data)

    def _read(self, path: str, key: str) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            self.skipped.append(f"{key}: niet te lezen ({exc.strerror})")
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(MAX_MESSAGE + 1)[:MAX_MESSAGE]

    def processed(self, key: str) -> None:
        done = self.root / f".{DONE_FOLDER}"
        for sub in ("cur", "new", "tmp"):
            (done / sub).mkdir(parents=True, exist_ok=True)
        name = key.split("/", 1)[1]
        if ":2," not in name:
            name += ":2,"
        os.rename(self.root / key, done / "cur" / name)


def _maildir(config: Config, location: str) -> Maildir:
    root = config.path(location)
    for sub in ("new", "cur"):
        path = root / sub
        if not path.is_dir() or path.is_symlink():
            raise _fail(config, f"[bounces] mailbox: {root} is geen Maildir (map {sub}/ ontbreekt)")
    return Maildir(root)


# IMAP ------------------------------------------------------------------------------------


class Imap:
    def __init__(self, config: Config, url: str) -> None:
        parts = urlsplit(url)
        self.config = config
        self.user = unquote(parts.username or "")
        self.host = parts.hostname or ""
        self.port = parts.port or 993
        self.folder = unquote(parts.path.strip("/")) or "INBOX"
        self.where = f"{self.host}:{self.port}"
        self.skipped: list[str] = []
        self.conn: imaplib.IMAP4_SSL | None = None
        self.capabilities: set[str] = set()
        ca = config.bounces.ca_file
        self.cafile = str(config.path(ca)) if ca else None

    def _fail(self, message: str) -> KrimppostError:
        return _fail(self.config, f"IMAP-server {self.where}: {message}")

    def __enter__(self) -> Imap:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise _fail(
                self.config, f"omgevingsvariabele {PASSWORD_ENV} (IMAP-wachtwoord) is niet gezet"
            )
        try:
            context = ssl.create_default_context(cafile=self.cafile)
        except OSError as exc:
            raise _fail(self.config, f"[bounces] ca_file: {self.cafile}: {exc.strerror}") from None
        try:
            self.conn = imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=context, timeout=TIMEOUT
            )
        except ssl.SSLCertVerificationError as exc:
            raise self._fail(f"certificaat afgekeurd: {exc.verify_message}") from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise self._fail(f"geen verbinding: {_reason(exc)}") from None
        try:
            self.conn.login(self.user, password)
        except imaplib.IMAP4.error:
            self._close()
            raise self._fail(f"inloggen als {self.user} geweigerd") from None
        except OSError as exc:
            self._close()
            raise self._fail(f"verbinding verbroken: {_reason(exc)}") from None
        # the capabilities after login (MOVE, UIDPLUS) are not those of the greeting
        status, data = self._call("capability")
        self.capabilities = set(data[-1].decode().upper().split()) if status == "OK" else set()
        status, _ = self._call("select", _quote(self.folder))
        if status != "OK":
            self._close()
            raise self._fail(f"map {self.folder} bestaat niet")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self.conn.logout()
            self._close()

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.shutdown()
        self.conn = None

    def _call(self, command: str, *args: Any) -> tuple[str, list[Any]]:
        assert self.conn is not None
        try:
            if command in ("select", "capability"):
                return getattr(self.conn, command)(*args)  # type: ignore[no-any-return]
            return self.conn.uid(command, *args)  # type: ignore[return-value]
        except imaplib.IMAP4.abort as exc:
            raise self._fail(f"verbinding verbroken: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise self._fail(f"verbinding verbroken: {_reason(exc)}") from None
        except imaplib.IMAP4.error as exc:
            return "NO", [str(exc).encode()]

    def messages(self) -> Iterator[Message]:
        status, data = self._call("search", None, "ALL")
        uids = data[0].split() if status == "OK" and data and data[0] else []
        for uid in uids:
            key = uid.decode()
            status, data = self._call("fetch", key, "(RFC822.SIZE)")
            found = re.search(rb"RFC822\.SIZE (\d+)", data[0] or b"") if status == "OK" else None
            if found is None:
                continue  # gone meanwhile
            size = int(found.group(1))
            if size > MAX_MESSAGE:
                self.skipped.append(f"UID {key}: te groot ({_size(size)}), blijft staan")
                continue
            status, data = self._call("fetch", key, "(BODY.PEEK[])")
            body = next((part[1] for part in data if isinstance(part, tuple)), None)
            if status == "OK" and isinstance(body, bytes):
                yield Message(key, body)

    def processed(self, key: str) -> None:
        assert self.conn is not None
        if "MOVE" in self.capabilities:
            status, _ = self._call("move", key, _quote(DONE_FOLDER))
            if status != "OK":  # the folder is made the first time
                self._create()
                status, _ = self._call("move", key, _quote(DONE_FOLDER))
        else:
            status, _ = self._call("copy", key, _quote(DONE_FOLDER))
            if status != "OK":
                self._create()
                status, _ = self._call("copy", key, _quote(DONE_FOLDER))
            if status == "OK":
                self._call("store", key, "+FLAGS.SILENT", r"(\Deleted)")
                if "UIDPLUS" in self.capabilities:
                    self._call("expunge", key)
                else:
                    self.conn.expunge()
        if status != "OK":
            raise self._fail(f"bericht {key} niet naar {DONE_FOLDER} verplaatst")

    def _create(self) -> None:
        assert self.conn is not None
        # A top-level `verwerkt`: with Dovecot's and most servers' default namespace (no
        # prefix) it sits beside INBOX.
        with contextlib.suppress(imaplib.IMAP4.error):
            self.conn.create(_quote(DONE_FOLDER))


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "verbinding geweigerd"
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"geen antwoord binnen {TIMEOUT:.0f} s"
    if isinstance(exc, socket.gaierror):
        return "onbekende host"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def open_mailbox(config: Config) -> Mailbox:
    location = config.bounces.mailbox
    if location.startswith("maildir:"):
        return _maildir(config, location.removeprefix("maildir:"))
    return Imap(config, location)
