"""Files are read only from inside their folder (content/, templates/), wherever links point.

A symbolic link is judged by the path it resolves to, never by its name: a link to
`../.krimppost/state.sqlite` or `/etc/passwd` is a problem, not an attachment. Links from
one file to another inside the folder are fine.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pipeline.errors import KrimppostError, Problem

_REASONS = {
    errno.EACCES: "geen leesrechten",
    errno.EPERM: "geen leesrechten",
    errno.ENOENT: "bestaat niet (meer)",
    errno.ELOOP: "koppeling in een kring (verwijst uiteindelijk naar zichzelf)",
    errno.EISDIR: "is een map",
    errno.EIO: "leesfout van de schijf",
}


def reason(exc: OSError) -> str:
    """An OSError in Dutch, for a problem line."""
    return _REASONS.get(exc.errno or 0, exc.strerror or str(exc))


def link_problem(path: Path, root: Path, folder: str) -> str | None:
    """Why the link at `path` may not be used (None when it resolves to inside `root`, which
    must itself be resolved). `folder` names the root in the message, e.g. "content/"."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop, before Python 3.13
        if isinstance(exc, FileNotFoundError):
            return "koppeling naar een bestand dat niet bestaat"
        if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
            return "koppeling in een kring (verwijst uiteindelijk naar zichzelf)"
        return f"koppeling onleesbaar: {reason(exc)}"
    if not target.is_relative_to(root):
        return f"koppeling wijst buiten {folder}: {target}"
    return None


def inside(path: Path, root: Path) -> Path | None:
    """The resolved `path` when it is a regular file inside the resolved `root`."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


class Refused(ValueError):
    """A file that may not be read: a link out of its folder, or no regular file."""


def read_inside(path: Path, root: Path, folder: str) -> bytes:
    """The bytes of `path`, checked as they are read to lie inside the resolved `root`: a
    link swapped in after the folder was scanned still cannot make the build read a file
    from outside. Raises OSError (unreadable) or Refused."""
    target = path
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except RuntimeError:  # a loop, before Python 3.13
            raise OSError(errno.ELOOP, "loop") from None
        if not target.is_relative_to(root):
            raise Refused(f"koppeling wijst buiten {folder}: {target}")
    # O_NOFOLLOW: no link may be swapped in at the end now; O_NONBLOCK: a FIFO does not hang
    # the build (it fails the regular-file test below).
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused("geen gewoon bestand (een map, apparaat of pijp)")
        opened = _opened_path(fd)
        if opened is not None and not opened.is_relative_to(root):
            raise Refused(f"koppeling wijst buiten {folder}: {opened}")
        return fh.read()


def read_confined(root: Path, rel: str, shown: str, folder: str) -> bytes:
    """`read_inside` for copying a file into the outbox: a file that changed into something
    unreadable since it was checked is a problem line (`shown`: "content/wrb/x.pdf")."""
    try:
        return read_inside(root / rel, root.resolve(), folder)
    except Refused as exc:
        raise KrimppostError([Problem(shown, None, str(exc))]) from None
    except OSError as exc:
        raise KrimppostError([Problem(shown, None, f"kan niet lezen: {reason(exc)}")]) from None


def _opened_path(fd: int) -> Path | None:
    """Where an open file really is (Linux); None where the system cannot tell."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None
