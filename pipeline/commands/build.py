"""`krimppost build`: site, feeds and calendars into outbox/, incremental and crash-safe.

Order of a build: read and validate everything; decide what is online; list every output
with its key; render only outputs whose key changed; stage and commit the files (pages
before the listings and feeds that link to them); delete files no longer produced; then
record items and outputs in the state store in one transaction.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Config, file_problems, load_config
from pipeline.content.reader import ContentFiles, read_content, scan_content
from pipeline.errors import KrimppostError, Problem
from pipeline.fingerprints import output_fingerprint
from pipeline.horizon import horizons
from pipeline.outbox import Outbox, digest, make_durable
from pipeline.publish import Publication, decide
from pipeline.render import search, templates
from pipeline.render.links import broken_links
from pipeline.render.newsletter import IssueLink, web_path
from pipeline.render.output import Output, key_of
from pipeline.render.outputs import all_outputs
from pipeline.render.site import transcript_html
from pipeline.state import BuildLock, IssueStore, StateStore
from pipeline.workers import cpu_count, parallel_map


@dataclass
class BuildReport:
    publication: Publication
    problems: tuple[Problem, ...]
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    seconds: float = 0.0
    social: str = ""
    skipped: bool = False
    # What the build got round (a [podcast] image that is missing: the feed goes without):
    # shown, but neither a failed build nor a reason to build again.
    warnings: tuple[Problem, ...] = ()

    def summary(self) -> str:
        p = self.publication
        warned = ""
        if self.warnings:
            n = len(self.warnings)
            warned = f"; {n} waarschuwing{'' if n == 1 else 'en'}"
        if self.skipped:
            return (
                f"niets veranderd sinds de vorige build; niets geschreven{warned}; "
                f"{self.seconds:.2f} s"
            )
        social = f"; {self.social}" if self.social else ""
        moved = f", {len(p.moved)} verplaatst" if p.moved else ""
        return (
            f"{len(p.entries)} berichten online ({len(p.new)} nieuw, {len(p.changed)} gewijzigd, "
            f"{len(p.withdrawn)} ingetrokken{moved}, {len(p.kept)} vorige versie behouden); "
            f"{len(self.written)} bestanden geschreven, {len(self.removed)} verwijderd, "
            f"{self.unchanged} ongewijzigd{social}; {len(self.problems)} fouten{warned}; "
            f"{self.seconds:.2f} s"
        )


def site_fingerprint(config: Config, dirs: list[Path]) -> str:
    return output_fingerprint(config, templates.fingerprint(dirs))


def site_paths(outputs: list[Output], issues: Sequence[IssueLink]) -> set[str]:
    """Every file the site has after this build: its outputs and the web versions of the
    newsletter issues (which `compile` and `approve` write)."""
    return {o.path for o in outputs} | {f"site/{i.path}index.html" for i in issues}


def issue_links(config: Config, state: StateStore) -> tuple[IssueLink, ...]:
    return tuple(
        IssueLink(number, subject, created.astimezone(config.site.tz), web_path(number))
        # A concept waiting for approval is not on the site (with approval off, compile
        # approves an issue as it makes it).
        for number, subject, created in IssueStore(state).summaries(approved_only=True)
    )


def build(
    root: Path,
    now: datetime,
    *,
    lock_timeout: float = 60.0,
) -> BuildReport:
    started_wall = time.perf_counter()
    started = datetime.now(UTC)
    config = load_config(root)
    now = config.moment(now)
    state_path = config.path(config.state.path)
    with BuildLock(state_path, lock_timeout), contextlib.ExitStack() as cleanup:
        dirs = templates.template_dirs(config.templates_dir)
        fp = site_fingerprint(config, dirs)
        with StateStore.of(config) as state:
            files = scan_content(config.root)
            inputs = _inputs_fingerprint(fp, files, IssueStore(state).summaries(approved_only=True))
            meta = state.build_meta()
            if _nothing_to_do(config, meta, inputs, now) and search.intact(
                config, state.outputs(search.PREFIX)
            ):
                report = BuildReport(
                    Publication(entries=()), (), skipped=True, warnings=(*file_problems(config),)
                )
                report.seconds = time.perf_counter() - started_wall
                return report
        from pipeline.commands.problems import item_problems
        from pipeline.social.drafts import sync_drafts

        content = read_content(config, files=files)
        with StateStore.of(config) as state:
            publication = decide(config, content, state, now)
            reach = horizons(config, state.first_build(), now)
            issues = issue_links(config, state)
            # Temp files of a killed run go first, those of a failing build with it.
            outbox = cleanup.enter_context(Outbox(config.outbox_dir).session(state_path))
            previous = state.outputs()
            previous_keys = {path: key for path, (key, _) in previous.items()}
            # The search index is made by other processes while the pages are rendered.
            indexing = cleanup.enter_context(
                search.start(
                    config,
                    publication.entries,
                    fp,
                    previous_keys,
                    functools.partial(transcript_html, config),
                )
            )
            outputs = all_outputs(
                config,
                publication,
                now,
                template_dirs=dirs,
                fp=fp,
                issues=issues,
                previous_keys=previous_keys,
            )
            report = BuildReport(
                publication,
                (
                    *item_problems(config, content.items),
                    *content.problems,
                    *broken_links(config, publication.entries, site_paths(outputs, issues)),
                ),
                warnings=(*file_problems(config),),
            )
            changed = _write(config, outbox, outputs, previous, report)
            _commit(state, outbox, [p for p in report.written if p not in previous])
            produced = {o.path for o in outputs}
            # The index's files are listed when it is done, below: not stale meanwhile.
            stale = [p for p in previous if p not in produced and not search.owns(p)]
            report.removed = [p for p in stale if outbox.exists(p)]
            outbox.remove(stale)
            searched_before = {p: v for p, v in previous.items() if search.owns(p)}
            # The rendering's data is done with: not to be carried into the social workers.
            del outputs, previous, produced
            # Social drafts for the live entries; comms edits are never overwritten.
            social = sync_drafts(config, publication.entries, now, reach.social)
            report.social = social.summary()
            report.problems = (*report.problems, *social.problems)
            with state.transaction():
                # Moves first: a new file in the old place of a moved one is saved under the
                # id the move withdraws.
                state.note_first_build(now)
                for old_id, new_id in publication.moved:
                    state.move_item(old_id, new_id, now)
                for record, last_good in publication.saves:
                    state.save_item(record, last_good)
                for item_id in publication.withdrawn:
                    state.withdraw(item_id, now)
                state.update_outputs(changed, stale)
            # The search index last: Pagefind had the rendering, the commit, the social drafts
            # and the state's transaction to run beside. Its files go in after the pages they
            # point to; the build counts as done (its inputs recorded) only with them.
            searched = indexing.outputs()
            written = len(report.written)
            intact = {p: v for p, v in searched_before.items() if p not in indexing.damaged}
            search_changed = _write(config, outbox, searched, intact, report, flush=False)
            _commit(
                state, outbox, [p for p in report.written[written:] if p not in searched_before]
            )
            kept = {o.path for o in searched}
            gone = [p for p in searched_before if p not in kept]
            report.removed += [p for p in gone if outbox.exists(p)]
            outbox.remove(gone)
            with state.transaction():
                state.update_outputs(search_changed, gone)
                state.record_build(
                    started, now, len(report.written), len(report.removed), len(report.problems)
                )
                state.set_build_meta(
                    {
                        "inputs": inputs,
                        "now": now.astimezone(UTC).isoformat(),
                        "next_change": publication.next_change.astimezone(UTC).isoformat(),
                        "problems": str(len(report.problems)),
                    }
                )
    report.seconds = time.perf_counter() - started_wall
    return report


def _inputs_fingerprint(
    fp: str, files: ContentFiles, issues: list[tuple[int, str, datetime]]
) -> str:
    """Everything a build reads besides the clock: config, code, templates (in `fp`), every
    file under content/ by size and modification time, and the newsletter issues."""
    return key_of(fp, files.signature, issues)


def _nothing_to_do(config: Config, meta: dict[str, str], inputs: str, now: datetime) -> bool:
    if meta.get("inputs") != inputs or meta.get("problems") != "0":
        return False
    if not (config.outbox_dir / "site" / "index.html").exists():
        return False  # the outbox was removed: render it again
    last = datetime.fromisoformat(meta["now"])
    return last <= now < datetime.fromisoformat(meta["next_change"])


# Rendering more than this many outputs is spread over worker processes.
_PARALLEL_THRESHOLD = 200
_Shared = tuple[list[Output], Outbox, dict[str, tuple[str, str]], bool]
# path, key, digest, staged temp file (None: identical bytes in place), error (None: made)
_Rendered = tuple[str, str, str, tuple[str, str] | None, str | None]


def _render_range(shared: _Shared, bounds: tuple[int, int]) -> list[_Rendered]:
    jobs, outbox, previous, flush = shared
    done = [_render_one(out, outbox, previous) for out in jobs[bounds[0] : bounds[1]]]
    if flush:
        make_durable([temp for _, _, _, temp, _ in done if temp is not None])
    return done


def _render_one(out: Output, outbox: Outbox, previous: dict[str, tuple[str, str]]) -> _Rendered:
    """Render one output; stage it unless identical bytes are already in place."""
    try:
        data = out.produce()
    except KrimppostError:
        raise  # a broken template or setting, with its line: every page of it would fail
    except Exception as exc:  # one file that cannot be made must not stop every build
        return out.path, out.key, "", None, f"{type(exc).__name__}: {exc}"
    d = digest(data)
    prev = previous.get(out.path)
    if prev is not None and prev[1] == d and outbox.exists(out.path):
        return out.path, out.key, d, None, None
    return out.path, out.key, d, outbox.stage_file(out.path, data), None


def _write(
    config: Config,
    outbox: Outbox,
    outputs: list[Output],
    previous: dict[str, tuple[str, str]],
    report: BuildReport,
    flush: bool = True,
) -> dict[str, tuple[str, str]]:
    """Render and stage every output whose key changed, in stage order (committed by
    `_commit`). Returns what was staged or found in place. `flush` False: the files are
    moved into place without being flushed first (the search index, which checks its
    files' sizes on the next build instead: see search.py)."""
    jobs = _changed(outputs, previous, outbox, report)
    jobs.sort(key=lambda o: o.stage)
    last_stage = jobs[0].stage if jobs else 0
    try:
        results = _render_all(config, outbox, jobs, previous, flush)
        changed: dict[str, tuple[str, str]] = {}
        owners = {f"site/{e.path}": e.item.source for e in report.publication.entries}
        for job, (path, key, d, temp, error) in zip(jobs, results, strict=True):
            if error is not None:
                # The file stays as it was and is made again by the next build.
                owner = owners.get(path.rpartition("/")[0] + "/")
                report.problems = (
                    *report.problems,
                    Problem(
                        owner or f"outbox/{path}",
                        None,
                        f"interne fout bij het maken van outbox/{path}: {error}",
                    ),
                )
                continue
            changed[path] = (key, d)
            if temp is None:
                report.unchanged += 1
            else:
                if report.written and job.stage != last_stage:
                    outbox.barrier()
                last_stage = job.stage
                outbox.adopt([temp], durable=True)
                report.written.append(path)
    except BaseException:
        outbox.discard()
        raise
    return changed


def _commit(state: StateStore, outbox: Outbox, new: list[str]) -> None:
    """Commit what is staged. Write-ahead: the store learns of every `new` path before it
    appears in the outbox, so a file left by a build killed before its end is still removed
    when stale."""
    with state.transaction():
        state.note_outputs(new)
    try:
        outbox.commit()
    except BaseException:
        outbox.discard()
        raise


def _render_all(
    config: Config,
    outbox: Outbox,
    jobs: list[Output],
    previous: dict[str, tuple[str, str]],
    flush: bool,
) -> list[_Rendered]:
    """Render and stage `jobs`, over worker processes when there are many; `flush`: each
    file is flushed to disk before it is moved into place."""
    workers = cpu_count(config.build.workers) if len(jobs) >= _PARALLEL_THRESHOLD else 1
    # Ranges of ~1/8 of a worker's share: both cores stay busy to the end.
    size = max(20, len(jobs) // (workers * 8))
    bounds = [(i, min(i + size, len(jobs))) for i in range(0, len(jobs), size)]
    results: list[_Rendered] = []
    for chunk in parallel_map(_render_range, (jobs, outbox, previous, flush), bounds, workers):
        results.extend(chunk)
    return results


def _changed(
    outputs: list[Output],
    previous: dict[str, tuple[str, str]],
    outbox: Outbox,
    report: BuildReport,
) -> list[Output]:
    """The outputs whose key changed or whose file is gone; the others count as unchanged."""
    jobs = []
    for out in outputs:
        prev = previous.get(out.path)
        if prev is not None and prev[0] == out.key and outbox.exists(out.path):
            report.unchanged += 1
        else:
            jobs.append(out)
    return jobs
