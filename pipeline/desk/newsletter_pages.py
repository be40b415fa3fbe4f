"""The desk's newsletter pages: what the next compile would take now, each compiled issue as
a subscriber of a chosen track selection gets it, and the actions of the command line
behind buttons: compile, a proof to the signed-in person's address, approve.

Each action calls the function its command calls (compile_issue, send_proof, approve_issue,
deliver's send_issue), so the desk and the terminal can never disagree; each is in the audit
log, refused ones too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pipeline.commands.approval import approve_issue
from pipeline.commands.newsletter import NextIssue, compile_issue, next_issue
from pipeline.config import Config
from pipeline.delivery.proof import Shown, render_for, send_proof
from pipeline.delivery.sender import send_issue
from pipeline.desk.accounts import Session
from pipeline.desk.shell import Desk
from pipeline.errors import KrimppostError
from pipeline.state import IssueRecord, IssueStore, StateStore

# The e-mail in its frame: its own inline styles and remote images, nothing else, and
# framed by the desk's own pages only.
MAIL_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
}
RECENT = 50  # issues listed on the overview


@dataclass(frozen=True)
class IssueRow:
    number: int
    subject: str
    created: datetime
    status: str  # concept, goedgekeurd, verstuurd
    approved_by: str | None
    approved_at: datetime | None


def issue_rows(config: Config) -> list[IssueRow]:
    with StateStore.of(config) as state:
        issues = IssueStore(state)
        out = []
        for number, _subject, _created in issues.summaries()[:RECENT]:
            record = issues.get(number)
            if record is None:
                continue
            sent = issues.send_begun(number)
            status = "verstuurd" if sent else "goedgekeurd" if record.approved else "concept"
            out.append(
                IssueRow(
                    number,
                    record.subject,
                    record.created_at,
                    status,
                    record.approved_by,
                    record.approved_at,
                )
            )
        return out


def issue_of(config: Config, number: int) -> tuple[IssueRecord, bool] | None:
    with StateStore.of(config) as state:
        issues = IssueStore(state)
        record = issues.get(number)
        return None if record is None else (record, issues.send_begun(number))


def selection(config: Config, request: Request) -> frozenset[str] | None:
    """The tracks ticked in the form (`?traject=a&traject=b`); None: every track."""
    chosen = frozenset(t for t in request.query_params.getlist("traject") if t in config.tracks)
    return chosen or None


def routes(desk: Desk) -> list[Route]:
    def now() -> datetime:
        return desk.clock()

    async def overview(
        session: Session,
        status: int = 200,
        done: str = "",
        errors: tuple[str, ...] = (),
    ) -> Response:
        config = desk.reload()
        try:
            upcoming: NextIssue | None = await run_in_threadpool(next_issue, desk.root, now())
            problem: tuple[str, ...] = ()
        except KrimppostError as exc:
            upcoming, problem = None, tuple(str(p) for p in exc.problems)
        rows = await run_in_threadpool(issue_rows, config)
        return desk.page(
            session,
            "newsletter.html",
            "Nieuwsbrief",
            status,
            current="/nieuwsbrief",
            upcoming=upcoming,
            upcoming_problems=problem,
            rows=rows,
            track_labels={t.id: t.label for t in config.tracks.values()},
            approval=config.newsletter.approval,
            done=done,
            errors=errors,
        )

    async def listing(request: Request, session: Session, form: FormData | None) -> Response:
        return await overview(session)

    async def compile_now(request: Request, session: Session, form: FormData | None) -> Response:
        try:
            report = await run_in_threadpool(compile_issue, desk.root, now())
        except KrimppostError as exc:
            lines = tuple(str(p) for p in exc.problems)
            desk.audit(session, "samenstellen geweigerd", "nieuwsbrief", fouten=list(lines))
            return await overview(session, 409, errors=lines)
        subject = f"nieuwsbrief {report.number}" if report.number else "nieuwsbrief"
        desk.audit(session, "nieuwsbrief samengesteld", subject, uitkomst=report.summary())
        return await overview(session, done=report.summary())

    async def issue_page(
        request: Request,
        session: Session,
        number: int,
        chosen: frozenset[str] | None,
        status: int = 200,
        done: str = "",
        errors: tuple[str, ...] = (),
    ) -> Response:
        config = desk.reload()
        found = await run_in_threadpool(issue_of, config, number)
        if found is None:
            return desk.notice(session, "Niet gevonden", 404, f"Nieuwsbrief {number} bestaat niet.")
        record, sent = found
        shown: Shown | None = None
        try:
            shown = await run_in_threadpool(render_for, config, record, chosen)
        except KrimppostError as exc:
            errors = (
                *errors,
                *(str(p).removeprefix("krimppost: --tracks: ") for p in exc.problems),
            )
        query = "&".join(f"traject={t}" for t in sorted(chosen or ()))
        return desk.page(
            session,
            "newsletter_issue.html",
            f"Nieuwsbrief {number}",
            status,
            current="/nieuwsbrief",
            record=record,
            sent=sent,
            shown=shown,
            chosen=chosen or frozenset(),
            query=query,
            tracks=list(config.tracks.values()),
            track_labels={t.id: t.label for t in config.tracks.values()},
            approval=config.newsletter.approval,
            done=done,
            errors=errors,
        )

    def number_of(request: Request) -> int | None:
        raw = request.path_params["number"]
        return int(raw) if raw.isdigit() and len(raw) < 10 else None

    async def issue(request: Request, session: Session, form: FormData | None) -> Response:
        number = number_of(request)
        if number is None:
            return desk.notice(session, "Niet gevonden", 404, "Deze nieuwsbrief bestaat niet.")
        return await issue_page(request, session, number, selection(desk.config, request))

    async def mail(request: Request, session: Session, form: FormData | None) -> Response:
        config = desk.reload()
        number = number_of(request)
        found = None if number is None else await run_in_threadpool(issue_of, config, number)
        if found is None:
            return desk.notice(session, "Niet gevonden", 404, "Deze nieuwsbrief bestaat niet.")
        try:
            shown = await run_in_threadpool(
                render_for, config, found[0], selection(config, request)
            )
        except KrimppostError as exc:
            return desk.notice(session, "Geen nieuwsbrief", 404, *(str(p) for p in exc.problems))
        return HTMLResponse(shown.html, headers=MAIL_HEADERS)

    def form_selection(form: FormData | None) -> frozenset[str] | None:
        config = desk.config
        ticked = form.getlist("traject") if form is not None else []
        return frozenset(str(t) for t in ticked if t in config.tracks) or None

    async def proof(request: Request, session: Session, form: FormData | None) -> Response:
        number = number_of(request)
        if number is None:
            return desk.notice(session, "Niet gevonden", 404, "Deze nieuwsbrief bestaat niet.")
        chosen = form_selection(form)
        subject = f"nieuwsbrief {number}"
        address = session.user.email
        if not address:
            why = (
                "Je account heeft geen e-mailadres, dus er kan geen proef naar je toe. Vraag een "
                "beheerder het toe te voegen (krimppost users email "
                f"{session.user.name} ADRES)."
            )
            desk.audit(session, "proef geweigerd", subject, reden="geen e-mailadres")
            return await issue_page(request, session, number, chosen, 409, errors=(why,))
        tracks = ",".join(sorted(chosen)) if chosen else None
        try:
            report = await run_in_threadpool(send_proof, desk.root, number, [address], tracks)
        except KrimppostError as exc:
            lines = tuple(str(p) for p in exc.problems)
            desk.audit(session, "proef mislukt", subject, aan=address, fouten=list(lines))
            return await issue_page(request, session, number, chosen, 409, errors=lines)
        if not report.ok:
            desk.audit(session, "proef mislukt", subject, aan=address, uitkomst=report.summary())
            return await issue_page(
                request, session, number, chosen, 502, errors=(report.summary(),)
            )
        desk.audit(session, "proef verstuurd", subject, aan=address, trajecten=list(report.tracks))
        return await issue_page(request, session, number, chosen, done=report.summary())

    async def approve(request: Request, session: Session, form: FormData | None) -> Response:
        number = number_of(request)
        if number is None:
            return desk.notice(session, "Niet gevonden", 404, "Deze nieuwsbrief bestaat niet.")
        chosen = form_selection(form)
        subject = f"nieuwsbrief {number}"
        try:
            report = await run_in_threadpool(
                approve_issue, desk.root, number, session.user.name, now()
            )
        except KrimppostError as exc:
            lines = tuple(str(p) for p in exc.problems)
            desk.audit(session, "goedkeuren geweigerd", subject, fouten=list(lines))
            return await issue_page(request, session, number, chosen, 409, errors=lines)
        done = report.summary()
        if report.already:
            desk.audit(session, "goedkeuren (was al gedaan)", subject, door=report.by)
            return await issue_page(request, session, number, chosen, done=done)
        desk.audit(session, "nieuwsbrief goedgekeurd", subject)
        if report.send_now:  # [newsletter] send_on_approval, as the command line does
            sender = threading.Thread(
                target=send_issue, args=(desk.root, number, False), name=f"krimppost-send-{number}"
            )
            sender.start()
            done = done.replace(
                "; het wordt nu verstuurd", "; het wordt nu verstuurd (voortgang: krimppost status)"
            )
        return await issue_page(request, session, number, chosen, done=done)

    right = "newsletter"
    return [
        Route("/nieuwsbrief", desk.guarded(right, listing), methods=["GET"]),
        Route("/nieuwsbrief/samenstellen", desk.guarded(right, compile_now), methods=["POST"]),
        Route("/nieuwsbrief/{number}", desk.guarded(right, issue), methods=["GET"]),
        Route("/nieuwsbrief/{number}/mail", desk.guarded(right, mail), methods=["GET"]),
        Route("/nieuwsbrief/{number}/proef", desk.guarded(right, proof), methods=["POST"]),
        Route("/nieuwsbrief/{number}/goedkeuren", desk.guarded(right, approve), methods=["POST"]),
    ]
