"""The site's search index: Pagefind bundles under site/zoeken/index/, in parts.

Pagefind has no incremental mode and costs about 1.7 ms of CPU per item, so the published
items are spread over a power of two of parts by a hash of their page; a part is indexed
again only when one of its items changed, and the search page merges the parts in the
browser (`mergeIndex`). The first part carries Pagefind's scripts; the others only their
index. The parts are indexed by a process of their own (pagefind_parts.py), started before
the build renders its pages and waited for after: the indexing runs beside the rendering.

Only the build's entries are indexed: drafts, embargoed and withdrawn items are never
entries. Each file of a part is an output like any other (atomic, removed when stale); a
part's `pagefind-entry.json` is keyed by its items, so its previous key says whether the
part is current. A part whose indexing fails keeps its previous files, and the build
reports it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.config import Config
from pipeline.publish import Entry
from pipeline.render import pagefind_parts
from pipeline.render.output import Output, key_of
from pipeline.render.templates import dutch_date
from pipeline.workers import cpu_count

SEARCH_VERSION = 1
FOLDER = "zoeken/index/"  # site-relative
ENTRY = "pagefind-entry.json"
# What the first part keeps of Pagefind's scripts: the search page has its own small interface.
RUNTIME = ("pagefind.js", "pagefind-worker.js", "wasm.nl.pagefind", "wasm.unknown.pagefind")
DATA_FOLDERS = ("fragment/", "index/", "filter/")
TIMEOUT = 600.0


def part_count(items: int, size: int) -> int:
    """Parts for `items` items of at most about `size` each: a power of two, so the parts of
    every item change only when the site doubles (or halves)."""
    return 1 << max(0, math.ceil(math.log2(max(1, math.ceil(items / size)))))


def part_of(path: str, parts: int) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") % parts


PREFIX = f"site/{FOLDER}"  # outbox-relative


def owns(path: str) -> bool:
    """Whether outbox file `path` is part of the index."""
    return path.startswith(PREFIX)


def intact(config: Config, files: Mapping[str, tuple[str, str]]) -> bool:
    """Whether every file of the index (outbox path -> key, digest) is in place at its
    size: a build with nothing else to do still mends the index after a power cut."""
    outbox = f"{config.outbox_dir}{os.sep}"
    return all(_intact(outbox + path, key) for path, (key, _) in files.items())


def groups(config: Config, entries: Sequence[Entry]) -> list[list[Entry]]:
    """The entries of each part (a part may be empty: it then has no files)."""
    parts = part_count(len(entries), config.search.part_size)
    out: list[list[Entry]] = [[] for _ in range(parts)]
    for entry in entries:
        out[part_of(entry.path, parts)].append(entry)
    return out


def bundle_paths(parts: list[list[Entry]]) -> list[str]:
    """Site-relative folders of the parts that have items; the first has the scripts."""
    return [f"{FOLDER}{k}/" for k, group in enumerate(parts) if group]


def record(entry: Entry, part: int, track: str, tz: ZoneInfo, transcript: str | None) -> str:
    """The page Pagefind indexes for one item: its title, date and track as metadata, the
    summary, the body and a podcast's transcript as the text; its part as a filter (the
    search page asks each part on its own whether it has the words, see zoeken.js)."""
    item = entry.item
    e = functools.partial(html.escape, quote=True)
    return (
        '<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8"></head><body>'
        f'<main data-pagefind-body data-pagefind-filter="deel:{part}">'
        f'<h1 data-pagefind-meta="title">{e(item.title)}</h1>'
        f'<p data-pagefind-meta="datum" data-pagefind-ignore>{e(dutch_date(entry.published, tz))}</p>'
        f'<p data-pagefind-meta="traject" data-pagefind-ignore>{e(track)}</p>'
        f"<p>{e(item.summary)}</p><p>{e(_text(item.html))}</p>"
        f"<p>{e(_text(transcript or ''))}</p></main></body></html>"
    )


_TAG = re.compile(r"<[^>]*>")


def _text(body: str) -> str:
    """The words of a body (sanitised HTML): Pagefind parses plain text faster than markup,
    and the search page shows no more than a snippet. Not plaintext.html_to_text: nh3 costs
    0.84 s for 4,692 bodies where this takes 0.13 s (see bench/README.md)."""
    return html.unescape(_TAG.sub(" ", body))


def _pagefind() -> str:
    """The Pagefind binary of the pagefind-bin wheel; without it, `pagefind` on the PATH (and
    when that is missing too, each part fails with "Pagefind start niet", reported by the
    build, and the rest of the site is built)."""
    try:
        from pagefind_bin import get_executable

        return str(get_executable())
    except (ImportError, OSError):
        return "pagefind"


def _kept(primary: bool, rel: str) -> bool:
    if rel == ENTRY or rel.endswith(".pf_meta") or rel.startswith(DATA_FOLDERS):
        return True
    return primary and rel in RUNTIME


def _stage(rel: str) -> int:
    # The entry names the meta file, the meta file the chunks: those go first.
    return 2 if rel == ENTRY else 1 if rel.endswith(".pf_meta") else 0


def _failed(message: str) -> bytes:
    raise RuntimeError(message)


SCRATCH_PREFIX = "krimppost-zoeken-"


def _scratch() -> str | None:
    """Where the pages for Pagefind and its bundles go for the time of a build: memory
    (/dev/shm) where there is, as Pagefind writes a file per item (see bench/README.md);
    what a killed build left there is removed by the next."""
    shm = "/dev/shm"
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK)):
        return None
    for left in Path(shm).glob(f"{SCRATCH_PREFIX}*"):
        pid = left.name[len(SCRATCH_PREFIX) :].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    return shm


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _previous_parts(previous_keys: Mapping[str, str]) -> dict[int, list[str]]:
    """The files of the index in the outbox now, by part."""
    parts: dict[int, list[str]] = {}
    for path in previous_keys:
        if path.startswith(PREFIX):
            number, _, _rest = path[len(PREFIX) :].partition("/")
            if number.isdigit():
                parts.setdefault(int(number), []).append(path)
    return parts


class Indexing:
    """The search index of one build: the parts that are current keep their files, the
    others are being indexed (`outputs()` waits for them). Leaving it stops what still runs
    and removes the temporary pages."""

    def __init__(self) -> None:
        self.kept: list[Output] = []
        self.stale: list[tuple[int, str, bool]] = []  # part, key, has the scripts
        self.previous_keys: Mapping[str, str] = {}
        # Files of the outbox not at the size their key says: written again whatever the key.
        self.damaged: set[str] = set()
        self.work: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.arguments: list[str] = []  # of pagefind_parts.py

    def __enter__(self) -> Indexing:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # its Pagefinds finish their part and stop: nothing waits
            self.process.wait()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)

    def outputs(self) -> list[Output]:
        """Every file of the index, once the parts being indexed are done."""
        out = list(self.kept)
        if self.process is None and self.arguments:
            pagefind_parts.main(self.arguments)
        if self.process is not None:
            try:
                self.process.wait(timeout=TIMEOUT * max(1, len(self.stale)))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for part, key, primary in self.stale:
            assert self.work is not None
            out += _part_outputs(self.work / str(part), part, key, primary, self.previous_keys)
        return out


def start(
    config: Config,
    entries: Sequence[Entry],
    fp: str,
    previous_keys: Mapping[str, str],
    transcript: Callable[[Entry], str | None],
) -> Indexing:
    """Start indexing the parts whose items changed; the others keep their files."""
    indexing = Indexing()
    if not config.search.enabled:
        return indexing
    indexing.previous_keys = previous_keys
    parts = groups(config, entries)
    first = next((k for k, group in enumerate(parts) if group), 0)
    before = _previous_parts(previous_keys)
    outbox = f"{config.outbox_dir}{os.sep}"  # strings: a Path per file costs 30 µs
    for part, group in enumerate(parts):
        if not group:
            continue
        folder = f"{PREFIX}{part}/"
        primary = part == first
        key = key_of(
            fp, "search", SEARCH_VERSION, len(parts), part, primary, [e.key for e in group]
        )
        entry = previous_keys.get(folder + ENTRY, "")
        damaged = {p for p in before.get(part, ()) if not _intact(outbox + p, previous_keys[p])}
        indexing.damaged |= damaged
        current = entry.rpartition(":")[0] == key and not damaged
        if current:
            # Unchanged keys: the build renders none of these; `produce` is never called.
            indexing.kept += [
                Output(p, previous_keys[p], functools.partial(_failed, p), 0)
                for p in before.get(part, ())
            ]
        else:
            indexing.stale.append((part, key, primary))
    if not indexing.stale:
        return indexing
    labels = {t.id: t.label for t in config.tracks.values()}
    tz = config.site.tz
    indexing.work = work = Path(
        tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=_scratch())
    )
    try:
        for part, _key, _primary in indexing.stale:
            (work / str(part)).mkdir()
            with open(work / str(part) / "paginas.jsonl", "w", encoding="utf-8") as pages:
                for e in parts[part]:
                    label = labels.get(e.item.track, e.item.track)
                    text = record(e, part, label, tz, transcript(e))
                    pages.write(json.dumps([f"{e.path}index.html", text]) + "\n")
        indexing.arguments = [
            _pagefind(),
            # One Pagefind per core at a time (each is mostly one thread).
            str(cpu_count(config.build.workers)),
            str(TIMEOUT),
            *(str(work / str(part)) for part, _key, _primary in indexing.stale),
        ]
        script = str(Path(__file__).with_name("pagefind_parts.py"))
        # Where this interpreter cannot be started again (run as another user), outputs()
        # indexes the parts itself, after the rendering.
        with contextlib.suppress(OSError):
            indexing.process = subprocess.Popen(
                [sys.executable, script, *indexing.arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    except BaseException:
        indexing.__exit__()
        raise
    return indexing


def _part_outputs(
    folder: Path, part: int, key: str, primary: bool, previous_keys: Mapping[str, str]
) -> list[Output]:
    """The files Pagefind made for one part; its previous files when it failed (the entry
    is made again, and fails again with the reason, next build)."""
    site_folder = f"{PREFIX}{part}/"
    result = _result(folder, primary)
    if isinstance(result, str):
        message = f"zoekindex, deel {part}: {result}"
        kept = [p for p in previous_keys if p.startswith(site_folder) and p != site_folder + ENTRY]
        return [
            *(Output(p, previous_keys[p], functools.partial(_failed, p), 0) for p in kept),
            Output(site_folder + ENTRY, f"{key}:0", functools.partial(_failed, message), 2),
        ]
    return [
        Output(
            site_folder + rel,
            f"{key if rel == ENTRY else hashlib.blake2b(data, digest_size=16).hexdigest()}:{len(data)}",
            functools.partial(bytes, data),
            _stage(rel),
        )
        for rel, data in result.items()
    ]


def _intact(path: str, key: str) -> bool:
    """Whether an index file is in the outbox at the size its key says. The build moves
    these files into place without flushing each to disk first (thousands of them: see
    bench/README.md); a power cut can then leave one empty or short, and its part is indexed
    again."""
    try:
        return os.stat(path).st_size == int(key.rpartition(":")[2])
    except (OSError, ValueError):
        return False


def _result(folder: Path, primary: bool) -> dict[str, bytes] | str:
    """A part's files by path inside its bundle, or what went wrong."""
    try:
        done = (folder / "klaar").read_text()
    except OSError:
        return "Pagefind is niet afgemaakt"
    out = folder / "uit"
    if done != "0" or not (out / ENTRY).is_file():
        if not done.lstrip("-").isdigit():
            return done
        log = (folder / "log.txt").read_bytes()[-4096:].decode("utf-8", "replace")
        last = log.strip().splitlines()[-1:] or ["geen uitvoer"]
        return f"Pagefind eindigde met code {done}: {last[0]}"
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and _kept(primary, rel):
            files[rel] = path.read_bytes()
    return files
