"""Social drafts during `build`: generated from the items, kept in line with them by rules
that never lose an edit. The file format is in `draftfile`, the posts' text in `compose`, the
review pages in `reviewpage`.

Statuses: `pending` (te beoordelen), `approved`, `rejected`, `stale` (item changed after an
edit or a review: the new text is in `suggestion`), `withdrawn` (item no longer online, or
`social: false`, or the platform switched off; kept because comms may have edited it).

Rules (`reconcile`):
- The body counts as edited when its hash differs from `generated_hash`. An edited body is
  never overwritten by the pipeline; only front-matter fields around it are updated.
- When the item or its generated text changes, a pending unedited draft is regenerated; any
  other draft (edited, approved, rejected, stale) keeps its text and becomes `stale` with the
  new text in `suggestion` (absent when the new text equals the current one).
- An approved draft whose text no longer matches `approved_hash` is back in review
  (`pending`; `approved_by`/`approved_at` stay as history).
- A withdrawn draft whose item comes back returns to its earlier status, then the same rules.
- Before replacing a draft file the pipeline re-reads it; if it changed since it was read
  (someone saved it meanwhile) the file is left alone until the next run.
- A draft file deleted by hand is made again while its item is online (reject it instead).

Folders are synced month by month, in worker processes when there are many (a cold build
makes 20,000 drafts; what that saves: bench/README.md, "Social drafts (issue 14)").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Config, SocialPlatform
from pipeline.content.model import SOCIAL_PLATFORMS
from pipeline.errors import KrimppostError, Problem
from pipeline.fingerprints import output_fingerprint
from pipeline.horizon import EARLIEST
from pipeline.outbox import Outbox, digest
from pipeline.publish import Entry
from pipeline.social.compose import (
    CODE,
    Composer,
    Generated,
    base_key,
    generator_key,
    item_hash_of,
    template_reads,
)
from pipeline.social.counting import length, preload
from pipeline.social.draftfile import (
    DRAFT_DIR,
    ITEM_ID,
    Draft,
    Stored,
    dump_draft,
    in_review,
    read_folder,
    scan,
    text_hash,
    write_if_unchanged,
)
from pipeline.social.reviewpage import (
    MONTH_DIR,
    WITHDRAWN_GONE,
    FolderInfo,
    Pages,
    by_month,
    commit_pages,
    folder_info,
    month_path,
    stale_month_pages,
    write_pages,
)
from pipeline.social.syncindex import (
    GONE,
    SyncIndex,
    folder_holds,
    info_of,
    remove_old_index,
)
from pipeline.state import SocialDraftRecord, SocialFolderRecord, StateStore
from pipeline.workers import cpu_count, parallel_map

WITHDRAWN_SOCIAL_OFF = "het item heeft 'social: false'"
WITHDRAWN_PLATFORM_OFF = "dit platform staat uit in config.toml"


# Status rules ---------------------------------------------------------------------------


def reconcile(
    existing: Draft | None,
    generated: Generated,
    entry: Entry,
    platform: SocialPlatform,
    now: str,
    key: str = "",
    item_hash: str | None = None,
) -> tuple[Draft, str]:
    """The draft after this run, and what happened: created, regenerated, stale, reopened,
    returned or unchanged. Never changes the text of an edited, approved or stale draft.
    `item_hash` stands for what of the item the post is made from (default: all of it)."""
    item = entry.item
    item_hash = item_hash or item.content_hash
    new_hash = text_hash(generated.text)
    meta: dict[str, Any] = {
        "limit": platform.limit,
        "link": generated.link,
        "title": item.title,
        "image": item.image,
        "image_alt": item.image_alt,
        "published": entry.published.isoformat(),
        "generator_key": key,
    }
    if existing is None:
        draft = Draft(
            platform=platform.id,
            item=item.id,
            status="pending",
            text=generated.text,
            length=generated.length,
            generated_hash=new_hash,
            created=now,
            updated=now,
            source=generated.source,
            item_hash=item_hash,
            latest_hash=new_hash,
            **meta,
        )
        return draft, "created"

    draft = in_review(existing)
    outcome = "reopened" if draft.status != existing.status else "unchanged"
    if draft.status == "withdrawn":
        draft = in_review(
            replace(
                draft,
                status=draft.withdrawn_from or "pending",
                withdrawn_from=None,
                withdrawn_reason=None,
            )
        )
        outcome = "returned"
    # Drafts made before item_hash left out the body carry the content hash: as good a match.
    item_changed = draft.item_hash not in (item_hash, item.content_hash)
    if new_hash != draft.latest_hash or item_changed:
        if draft.status == "pending" and not draft.edited:
            if new_hash != draft.generated_hash:
                draft = replace(
                    draft, text=generated.text, generated_hash=new_hash, source=generated.source
                )
                outcome = "regenerated"
            draft = replace(draft, suggestion=None)
        else:
            draft = replace(
                draft,
                status="stale",
                approved_hash=None,
                suggestion=generated.text if generated.text != draft.text else None,
                source=generated.source,
            )
            outcome = "stale"
        draft = replace(draft, latest_hash=new_hash, item_hash=item_hash)
    draft = replace(draft, length=length(platform, draft.text), **meta)
    return _stamped(existing, draft, now, outcome)


def refresh(existing: Draft, platform: SocialPlatform, now: str) -> tuple[Draft, str]:
    """A draft whose inputs did not change since it was generated: only what a hand edit
    changes (its length, an approval that no longer holds) is brought up to date."""
    draft = in_review(existing)
    outcome = "reopened" if draft.status != existing.status else "unchanged"
    if draft.edited:
        draft = replace(draft, length=length(platform, draft.text))
    return _stamped(existing, draft, now, outcome)


def _stamped(existing: Draft, draft: Draft, now: str, outcome: str) -> tuple[Draft, str]:
    """`updated` moves only when something a reviewer sees changed."""
    if draft == existing:
        return existing, "unchanged"
    if replace(draft, generator_key=existing.generator_key) == existing:
        return draft, "unchanged"
    return replace(draft, updated=now), outcome


def withdraw(existing: Draft, reason: str, now: str) -> Draft:
    draft = in_review(existing)
    if draft.status != "withdrawn":
        draft = replace(draft, status="withdrawn", withdrawn_from=draft.status)
    draft = replace(draft, withdrawn_reason=reason)
    return existing if draft == existing else replace(draft, updated=now)


# Build ------------------------------------------------------------------------------------


@dataclass
class SocialReport:
    created: int = 0
    regenerated: int = 0
    stale: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    reopened: int = 0  # approved, then edited: back in review
    returned: int = 0  # item back online
    problems: tuple[Problem, ...] = ()

    def summary(self) -> str:
        extra = ""
        if self.reopened:
            extra += f", {self.reopened} na bewerking terug ter beoordeling"
        if self.returned:
            extra += f", {self.returned} terug online"
        return (
            f"social: {self.created} nieuw, {self.regenerated} opnieuw gemaakt, "
            f"{self.stale} verouderd, {self.withdrawn} ingetrokken, "
            f"{self.unchanged} ongewijzigd{extra}"
        )


def stamp(now: datetime, config: Config) -> str:
    return config.moment(now).astimezone(config.site.tz).isoformat(timespec="seconds")


@dataclass
class FolderResult:
    """What syncing one item folder did; small, as it crosses from a worker process."""

    folder: str
    outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unsettled: bool = False  # not left in a state the index may vouch for
    staged: list[tuple[str, str]] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # draft id -> digest of its bytes
    info: FolderInfo = field(default_factory=lambda: FolderInfo(None, {}))
    # Per platform the [mtime_ns, size, inode] the file has after this run (as read, or of
    # the temp file written, which the rename keeps): the index records a folder only while
    # its files still have them, so an edit saved meanwhile is never vouched for.
    signatures: dict[str, list[int] | None] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)  # platform -> outbox path staged


def _kept_or_written(result: FolderResult, platform: str, found: Stored, path: str) -> None:
    """After `write_if_unchanged` succeeded: a file left as it was keeps the signature it was
    read with; a replaced one gets its temp file's."""
    if result.digests[found.id] == found.digest:
        result.signatures[platform] = found.signature
    else:
        result.written[platform] = path


def _sign(result: FolderResult, outbox: Outbox) -> None:
    for platform, path in result.written.items():
        try:
            st = os.stat(outbox.temp_path(path))
        except OSError:
            result.signatures[platform] = None
            continue
        result.signatures[platform] = [st.st_mtime_ns, st.st_size, st.st_ino]


class _Sync:
    """The inputs every folder shares; one per process (workers get theirs by fork)."""

    def __init__(self, config: Config, moment: datetime) -> None:
        self.config = config
        self.moment = moment
        self.when = stamp(moment, config)
        self.pages = Pages(config, CODE)
        self.composer = Composer(config)
        self.base_key = base_key(config, self.composer)
        self.enabled = [p for p in config.social.values() if p.enabled]
        self.reads = template_reads(
            self.composer.text_env, [f"social/{p.id}.txt.j2" for p in self.enabled]
        )
        self.broken: set[str] = set()  # platforms whose template failed: not tried again

    def folder(
        self, folder: str, entry: Entry | None, exists: bool, outbox: Outbox | None = None
    ) -> tuple[FolderResult, list[Draft]]:
        """Apply the rules to one item folder: `entry` is its live entry, None when gone.
        Returns what happened and the folder's readable drafts as they are now; the files it
        stages are in `result.staged` (when `outbox` is given: left in that outbox)."""
        own = outbox is None
        outbox = outbox or Outbox(self.config.outbox_dir)
        result = FolderResult(folder)
        stored = read_folder(outbox, folder) if exists else {}
        current: dict[str, Stored] = {}
        wanted: set[str] = set()
        outcomes = result.outcomes

        def count(outcome: str) -> None:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        if entry is not None and entry.item.social_enabled:
            for platform in self.enabled:
                draft_id = f"{folder}/{platform.id}"
                wanted.add(draft_id)
                found = stored.get(draft_id)
                if found is not None and found.problem is not None:
                    result.problems.append(found.problem)
                    result.unsettled = True
                    continue
                existing = found.draft if found is not None else None
                draft = self._next(entry, platform, existing, result)
                if draft is None:
                    if found is not None:
                        current[draft_id] = found
                    continue
                draft, outcome = draft
                if found is None:
                    data = dump_draft(draft)
                    outbox.stage(draft.path, data)  # new files: committed together, one sync
                    result.digests[draft_id] = digest(data)
                    result.written[platform.id] = draft.path
                    current[draft_id] = Stored(draft_id, result.digests[draft_id], draft, None)
                elif draft is existing:
                    result.digests[draft_id] = found.digest or ""
                    result.signatures[platform.id] = found.signature
                    current[draft_id] = found
                elif write_if_unchanged(outbox, draft, found.digest, result.digests):
                    _kept_or_written(result, platform.id, found, draft.path)
                    current[draft_id] = Stored(draft_id, result.digests[draft_id], draft, None)
                else:
                    outcome = "unchanged"  # saved by someone meanwhile: next run
                    current[draft_id] = found
                    result.unsettled = True
                count(outcome)

        for draft_id, found in stored.items():
            if draft_id in wanted:
                continue
            if found.draft is None:
                if found.problem is not None:
                    result.problems.append(found.problem)
                result.unsettled = True
                continue
            if entry is None:
                reason = WITHDRAWN_GONE
            elif not entry.item.social_enabled:
                reason = WITHDRAWN_SOCIAL_OFF
            else:
                reason = WITHDRAWN_PLATFORM_OFF
            draft = withdraw(found.draft, reason, self.when)
            current[draft_id] = found
            if draft is found.draft:
                result.digests[draft_id] = found.digest or ""
                result.signatures[found.draft.platform] = found.signature
            elif write_if_unchanged(outbox, draft, found.digest, result.digests):
                _kept_or_written(result, draft.platform, found, draft.path)
                current[draft_id] = Stored(draft_id, result.digests[draft_id], draft, None)
                if found.draft.status != "withdrawn":
                    count("withdrawn")
            else:
                result.unsettled = True
        if own:
            result.staged = outbox.take_staged()
            _sign(result, outbox)
        result.info = folder_info(s.draft for s in current.values() if s.draft is not None)
        return result, [s.draft for s in current.values() if s.draft is not None]

    def month(self, work: MonthWork) -> MonthDone:
        """Sync the changed folders of one month, then render its review page if what it
        shows changed (from the drafts in hand, reading only the folders left alone)."""
        results = []
        drafts: dict[str, list[Draft]] = {}
        outbox = Outbox(self.config.outbox_dir)
        for job in work.dirty:
            result, current = self.folder(*job, outbox)
            _sign(result, outbox)
            results.append(result)
            drafts[result.folder] = current
        infos = dict(work.clean)
        infos.update((r.folder, r.info) for r in results)
        folders = sorted(f for f, info in infos.items() if info.drafts)
        _key, page = self.pages.month_if_changed(
            outbox, work.month, folders, infos, self.moment, drafts
        )
        if page is None:
            return results, outbox.take_staged(), None
        # Written here, not sent back: the pages of a cold build are 20 MB.
        return results, outbox.take_staged(), outbox.stage_file(month_path(work.month), page)

    def _next(
        self,
        entry: Entry,
        platform: SocialPlatform,
        existing: Draft | None,
        result: FolderResult,
    ) -> tuple[Draft, str] | None:
        """The draft after this run and its outcome; None when its template is broken."""
        key = generator_key(self.base_key, entry, platform, self.reads)
        if (
            existing is not None
            and existing.generator_key == key
            and existing.status != "withdrawn"
        ):
            return refresh(existing, platform, self.when)
        if platform.id in self.broken:
            result.unsettled = True
            return None
        try:
            generated = self.composer.generate(entry, platform)
        except KrimppostError as exc:
            self.broken.add(platform.id)
            result.problems.extend(_project_relative(p, self.config) for p in exc.problems)
            result.unsettled = True
            return None
        return reconcile(
            existing, generated, entry, platform, self.when, key, item_hash_of(entry.item)
        )


@dataclass
class MonthWork:
    """The folders of one month of publication: those to sync, and the infos of the rest."""

    month: str
    dirty: list[tuple[str, Entry | None, bool]]
    clean: dict[str, FolderInfo]


# A month's synced folders, staged files, and its staged page if it changed.
MonthDone = tuple[list[FolderResult], list[Any], tuple[str, str] | None]


# Syncing many folders is spread over worker processes; below this the fork costs more.
_PARALLEL_THRESHOLD = 100


def _sync_month(shared: tuple[_Sync, list[MonthWork]], index: int) -> MonthDone:
    sync, works = shared
    return sync.month(works[index])


def _sync_months(sync: _Sync, works: list[MonthWork]) -> list[MonthDone]:
    workers = cpu_count(sync.config.build.workers)
    if workers > 1 and sum(len(w.dirty) for w in works) >= _PARALLEL_THRESHOLD:
        preload()  # once here, not once per worker
        return parallel_map(_sync_month, (sync, works), range(len(works)), workers)
    return [sync.month(w) for w in works]


def sync_drafts(
    config: Config, entries: Sequence[Entry], now: datetime, horizon: datetime = EARLIEST
) -> SocialReport:
    """Bring outbox/social/ in line with the live entries and update the review pages.

    An entry first published before `horizon` gets no drafts (an adopted archive is not
    posted again); one that has drafts already, made before there was a horizon, keeps
    them in line with its item as before.

    Call with the build lock held (the build does); review commands take the same lock.

    Incremental: the sync index (`syncindex`, tables in the state store, safe to empty)
    records per item folder the key of the entry its drafts were made from, the signature
    (mtime, size, inode) of the folder and of every draft file in it as this function left
    them, and what the review pages need of them. While the global inputs (settings,
    templates, code) are the same, a folder whose entry key and signatures all still hold is
    left alone: no read, no parse, no generation. Any difference (a hand edit, a new or
    deleted file, a changed item) sends the folder through the full rules. The work is done
    per month of publication, as the review pages are split: a month's page is rendered
    right after its folders.
    """
    moment = config.moment(now)
    sync = _Sync(config, moment)
    outbox = Outbox(config.outbox_dir)
    report = SocialReport()
    state_path = config.path(config.state.path)
    remove_old_index(state_path)
    with StateStore.of(config) as state:
        index = SyncIndex.read(state)
    # Settings, code and libraries, and the post templates (in the drafts' base key).
    fingerprint = output_fingerprint(config, sync.base_key)
    previous = index.folders if index.fingerprint == fingerprint else {}
    root = outbox.text_path(DRAFT_DIR)
    folders = _folders_on_disk(root)

    def holding(folder: str, key: str) -> SocialFolderRecord | None:
        """The folder's record, if it is for `key` and the folder is still as it says."""
        record = previous.get(folder)
        if record is None or record.entry_key != key or folder not in folders:
            return None
        return record if folder_holds(root, folder, record) else None

    live: dict[str, Entry] = {}
    clean: dict[str, SocialFolderRecord] = {}
    months: dict[str, MonthWork] = {}
    keys: dict[str, str] = {}

    def work(month: str) -> MonthWork:
        if month not in months:
            months[month] = MonthWork(month, [], {})
        return months[month]

    for entry in entries:
        folder = entry.item.id
        if entry.published < horizon and folder not in folders:
            continue
        live[folder] = entry
        keys[folder] = _entry_key(entry)
        record = holding(folder, keys[folder])
        if record is not None:
            clean[folder] = record
        else:
            month = FolderInfo(entry.published.isoformat(), {}).month(config)
            work(month).dirty.append((folder, entry, folder in folders))
    results: list[FolderResult] = []
    for folder in sorted(folders - live.keys()):
        keys[folder] = GONE
        record = holding(folder, GONE)
        if record is not None:
            clean[folder] = record
        else:
            # Gone items are few; their month is known only from their drafts.
            result, _drafts = sync.folder(folder, None, True)
            results.append(result)
            outbox.adopt(result.staged, durable=True)
            result.staged = []
            work(result.info.month(config))
    _commit(outbox)  # before month pages are rendered from these folders' files
    infos = {folder: info_of(record) for folder, record in clean.items()}
    for folder, info in infos.items():
        work(info.month(config)).clean[folder] = info
    for result in results:
        months[result.info.month(config)].clean[result.folder] = result.info

    works = sorted(months.values(), key=lambda w: len(w.dirty), reverse=True)
    month_staged: list[tuple[str, str]] = []
    for month_results, staged, staged_page in _sync_months(sync, works):
        results.extend(month_results)
        outbox.adopt(staged, durable=True)
        if staged_page is not None:
            month_staged.append(staged_page)
    problems: list[Problem] = []
    for result in results:
        for outcome, n in result.outcomes.items():
            setattr(report, outcome, getattr(report, outcome) + n)
        problems.extend(result.problems)
        outbox.adopt(result.staged, durable=True)
    enabled_ids = {p.id for p in sync.enabled}
    report.unchanged += sum(
        sum(1 for platform in record.drafts if platform in enabled_ids)
        for folder, record in clean.items()
        if folder in live and live[folder].item.social_enabled
    )
    report.problems = tuple(sorted(set(problems), key=Problem.sort_key))
    infos.update((r.folder, r.info) for r in results)
    months_now = by_month(config, infos)
    _commit(outbox)  # the drafts: before the pages that show them
    index_page = sync.pages.index_if_changed(outbox, infos, months_now, report.problems, moment)
    commit_pages(outbox, [], index_page, stale_month_pages(outbox, months_now), month_staged)

    folders_now = dict(clean)
    for result in results:
        if result.unsettled:
            continue
        record = _folder_record(root, result.folder, keys[result.folder], result)
        if record is not None:
            folders_now[result.folder] = record
    with StateStore.of(config) as state:
        index.save(state, fingerprint, folders_now)
    return report


_PAGES_FOLDER = MONTH_DIR.removeprefix(f"{DRAFT_DIR}/")  # the review pages, not an item


def _folders_on_disk(root: str) -> set[str]:
    try:
        return {
            e.name
            for e in os.scandir(root)
            if e.is_dir() and ITEM_ID.match(e.name) and e.name != _PAGES_FOLDER
        }
    except FileNotFoundError:
        return set()


def _commit(outbox: Outbox) -> None:
    try:
        outbox.commit()
    except BaseException:
        outbox.discard()
        raise


def refresh_review_page(config: Config, now: datetime) -> None:
    """After a review command changed draft files: the pages, from the index where its
    records still hold and from the files elsewhere."""
    outbox = Outbox(config.outbox_dir)
    index = SyncIndex.read_if_present(config)
    root = outbox.text_path(DRAFT_DIR)
    infos: dict[str, FolderInfo] = {}
    problems: list[Problem] = []
    for folder in sorted(_folders_on_disk(root)):
        record = index.folders.get(folder)
        if record is not None and folder_holds(root, folder, record):
            infos[folder] = info_of(record)
            continue
        found = read_folder(outbox, folder)
        problems.extend(s.problem for s in found.values() if s.problem is not None)
        infos[folder] = folder_info(s.draft for s in found.values() if s.draft is not None)
    write_pages(config, outbox, infos, problems, config.moment(now), CODE)


def load_all(config: Config) -> tuple[list[Draft], list[Problem]]:
    """Every readable draft, and a problem for every draft file that cannot be read."""
    drafts: list[Draft] = []
    problems: list[Problem] = []
    for found in scan(Outbox(config.outbox_dir)).values():
        if found.draft is not None:
            drafts.append(found.draft)
        elif found.problem is not None:
            problems.append(found.problem)
    return drafts, problems


# Incremental sync -------------------------------------------------------------------------


def _entry_key(entry: Entry) -> str:
    """What a draft depends on of its entry (the rest is in the global fingerprint)."""
    item = entry.item
    if not item.social_enabled:
        return "off"
    return f"{item.content_hash}|{entry.url}|{entry.published.isoformat()}"


def _folder_record(
    root: str, folder: str, key: str, result: FolderResult
) -> SocialFolderRecord | None:
    """The index record of a folder this run left settled: None unless every draft file in it
    is one this run read or wrote, still with the signature it had then."""
    directory = f"{root}/{folder}"
    try:
        mtime = os.stat(directory).st_mtime_ns
        drafts: dict[str, SocialDraftRecord] = {}
        for platform in SOCIAL_PLATFORMS:
            expected = result.signatures.get(platform)
            try:
                st = os.stat(f"{directory}/{platform}.md")
            except FileNotFoundError:
                if platform in result.signatures:
                    return None  # deleted meanwhile
                continue
            shown = result.info.drafts.get(platform)
            if expected is None or shown is None:
                return None  # not a file this run read or wrote
            if [st.st_mtime_ns, st.st_size, st.st_ino] != expected:
                return None  # changed since
            drafts[platform] = SocialDraftRecord(*expected, *shown)
        if os.stat(directory).st_mtime_ns != mtime:
            return None  # changed while we looked
    except OSError:
        return None
    return SocialFolderRecord(key, mtime, result.info.published, drafts)


def _project_relative(problem: Problem, config: Config) -> Problem:
    """A template problem names the file as the editor knows it: `templates/social/x.txt.j2`."""
    try:
        relative = Path(problem.path).resolve().relative_to(config.root.resolve())
    except (ValueError, OSError):
        return problem
    return replace(problem, path=relative.as_posix())
