"""The site's search index: Pagefind bundles under site/zoeken/index/, in parts.

Pagefind has no incremental mode and costs about 1.7 ms of CPU per item, so the published
items are spread over a power of two of parts by a hash of their page; a part is indexed
again only when one of its items changed, and the search page merges the parts in the
browser (`mergeIndex`). Part 0 carries Pagefind's scripts; the others only their index.

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
import math
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipeline.config import Config
from pipeline.publish import Entry
from pipeline.render.output import Output, key_of
from pipeline.render.templates import dutch_date
from pipeline.workers import cpu_count

SEARCH_VERSION = 1
FOLDER = "zoeken/index/"  # site-relative
ENTRY = "pagefind-entry.json"
# What part 0 keeps of Pagefind's scripts: the search page has its own small interface.
RUNTIME = ("pagefind.js", "pagefind-worker.js", "wasm.nl.pagefind", "wasm.unknown.pagefind")
DATA_FOLDERS = ("fragment/", "index/", "filter/")
TIMEOUT = 600.0


def part_count(items: int, size: int) -> int:
    """Parts for `items` items of at most about `size` each: a power of two, so the parts of
    every item change only when the site doubles (or halves)."""
    return 1 << max(0, math.ceil(math.log2(max(1, math.ceil(items / size)))))


def part_of(path: str, parts: int) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") % parts


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


def record(entry: Entry, part: int, track: str, tz: object, transcript: str | None) -> str:
    """The page Pagefind indexes for one item: its title, date and track as metadata, the
    summary, the body and a podcast's transcript as the text; its part as a filter (the
    search page asks each part on its own whether it has the words, see zoeken.js)."""
    item = entry.item
    e = functools.partial(html.escape, quote=True)
    return (
        '<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8"></head><body>'
        f'<main data-pagefind-body data-pagefind-filter="deel:{part}">'
        f'<h1 data-pagefind-meta="title">{e(item.title)}</h1>'
        f'<p data-pagefind-meta="datum" data-pagefind-ignore>{e(dutch_date(entry.published, tz))}</p>'  # type: ignore[arg-type]
        f'<p data-pagefind-meta="traject" data-pagefind-ignore>{e(track)}</p>'
        f"<p>{e(item.summary)}</p>{item.html}{transcript or ''}</main></body></html>"
    )


def _pagefind() -> str:
    from pagefind_bin import get_executable

    return str(get_executable())


def _kept(primary: bool, rel: str) -> bool:
    if rel == ENTRY or rel.endswith(".pf_meta") or rel.startswith(DATA_FOLDERS):
        return True
    return primary and rel in RUNTIME


def _stage(rel: str) -> int:
    # The entry names the meta file, the meta file the chunks: those go first.
    return 2 if rel == ENTRY else 1 if rel.endswith(".pf_meta") else 0


def _failed(message: str) -> bytes:
    raise RuntimeError(message)


class _Run:
    """One part being indexed: its pages written to a temporary folder, Pagefind started."""

    def __init__(self, part: int, primary: bool, work: Path, pages: list[tuple[str, str]]) -> None:
        self.part = part
        self.primary = primary
        self.site = work / f"{part}" / "site"
        self.out = work / f"{part}" / "uit"
        self.site.mkdir(parents=True)
        for path, text in pages:
            folder = self.site / path
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "index.html").write_text(text, encoding="utf-8")
        self.log = work / f"{part}" / "log.txt"
        self.process: subprocess.Popen[bytes] | None = None
        self.error = ""

    def start(self) -> None:
        # Its output goes to a file: a full pipe would stop it while we wait for another.
        with open(self.log, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    [
                        _pagefind(),
                        "--site",
                        str(self.site),
                        "--output-path",
                        str(self.out),
                        "--force-language",
                        "nl",
                        "--silent",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                self.error = f"Pagefind start niet: {exc.strerror or exc}"

    def wait(self) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # finish() says so
                self.process.wait(timeout=TIMEOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def finish(self) -> dict[str, bytes] | str:
        """The part's files by path inside the bundle, or what went wrong."""
        if self.process is None:
            return self.error
        try:
            self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"Pagefind stopte niet binnen {TIMEOUT:.0f} s"
        log = self.log.read_bytes()[-4096:]
        if self.process.returncode != 0 or not (self.out / ENTRY).is_file():
            last = log.decode("utf-8", "replace").strip().splitlines()[-1:] or ["geen uitvoer"]
            return f"Pagefind eindigde met code {self.process.returncode}: {last[0]}"
        files = {}
        for path in sorted(self.out.rglob("*")):
            rel = path.relative_to(self.out).as_posix()
            if path.is_file() and _kept(self.primary, rel):
                files[rel] = path.read_bytes()
        return files


def outputs(
    config: Config,
    entries: Sequence[Entry],
    fp: str,
    previous_keys: Mapping[str, str],
    track_labels: Mapping[str, str],
    transcript: Callable[[Entry], str | None],
) -> list[Output]:
    """Every file of the search index; parts whose items are unchanged keep their files."""
    if not config.search.enabled:
        return []
    parts = groups(config, entries)
    # The first part with items carries Pagefind's scripts.
    first = next((k for k, group in enumerate(parts) if group), 0)
    before = _previous_parts(previous_keys)
    out: list[Output] = []
    stale: list[tuple[int, str, bool]] = []
    for part, group in enumerate(parts):
        if not group:
            continue
        folder = f"site/{FOLDER}{part}/"
        primary = part == first
        key = key_of(
            fp, "search", SEARCH_VERSION, len(parts), part, primary, [e.key for e in group]
        )
        current = previous_keys.get(folder + ENTRY) == key and all(
            (config.outbox_dir / p).is_file() for p in before.get(part, ())
        )
        if current:
            # Unchanged keys: the build renders none of these; `produce` is never called.
            out += [
                Output(p, previous_keys[p], functools.partial(_failed, p), 0)
                for p in before.get(part, ())
            ]
        else:
            stale.append((part, key, primary))
    if not stale:
        return out
    tz = config.site.tz

    def pages(part: int) -> list[tuple[str, str]]:
        return [
            (
                e.path,
                record(e, part, track_labels.get(e.item.track, e.item.track), tz, transcript(e)),
            )
            for e in parts[part]
        ]

    with tempfile.TemporaryDirectory(prefix="krimppost-zoeken-") as work:
        runs = [(_Run(part, primary, Path(work), pages(part)), key) for part, key, primary in stale]
        # At most one Pagefind per core at a time (each is mostly one thread).
        width = cpu_count(config.build.workers)
        try:
            for i, (run, _key) in enumerate(runs):
                if i >= width:
                    runs[i - width][0].wait()
                run.start()
            for run, key in runs:
                out += _part_outputs(run, key, previous_keys)
        finally:
            for run, _key in runs:  # an interrupted build leaves no Pagefind running
                run.stop()
    return out


def _previous_parts(previous_keys: Mapping[str, str]) -> dict[int, list[str]]:
    """The files of the index in the outbox now, by part."""
    prefix = f"site/{FOLDER}"
    parts: dict[int, list[str]] = {}
    for path in previous_keys:
        if path.startswith(prefix):
            number, _, _rest = path[len(prefix) :].partition("/")
            if number.isdigit():
                parts.setdefault(int(number), []).append(path)
    return parts


def _part_outputs(run: _Run, key: str, previous_keys: Mapping[str, str]) -> list[Output]:
    folder = f"site/{FOLDER}{run.part}/"
    result = run.finish()
    if isinstance(result, str):
        # The previous files stay; the entry is made again (and fails again) next build.
        message = f"zoekindex, deel {run.part}: {result}"
        kept = [p for p in previous_keys if p.startswith(folder) and p != folder + ENTRY]
        return [
            *(Output(p, previous_keys[p], functools.partial(_failed, p), 0) for p in kept),
            Output(folder + ENTRY, key, functools.partial(_failed, message), 2),
        ]
    return [
        Output(
            folder + rel,
            key if rel == ENTRY else hashlib.blake2b(data, digest_size=16).hexdigest(),
            functools.partial(bytes, data),
            _stage(rel),
        )
        for rel, data in result.items()
    ]
