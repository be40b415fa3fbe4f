"""The desk's social review: the queue (`/social`), one draft as its platform shows it
(`/social/<item>/<platform>`), the edit and decision forms, the counter and the export.

The draft files stay the source of truth: every change goes through pipeline/social/review.py
(under the build lock, through the one atomic writer), carrying the digest of the file the
page was made from, so a change since (a hand edit, another person, a build) is refused with
both texts shown instead of overwritten.
"""

from __future__ import annotations

import html
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import regex
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline.desk.accounts import Session
from pipeline.desk.shell import Desk
from pipeline.errors import KrimppostError
from pipeline.outbox import Outbox
from pipeline.publish import item_path
from pipeline.social import export as exporting
from pipeline.social import review
from pipeline.social.counting import UNITS, length
from pipeline.social.reviewpage import (
    PLATFORM_LABELS,
    STATUS_LABELS,
    DraftView,
    month_label,
    month_of,
    view,
)

PAGE_SIZE = 100
WAITING = ("pending", "stale")
# What the platforms turn into links in a post: web addresses, #hashtags and @mentions.
_TOKENS = regex.compile(
    r"(https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'])|(?<![\w#])#(\w+)|(?<![\w@])@(\w+)"
)
_TAG_URLS = {
    "x": "https://x.com/hashtag/{}",
    "linkedin": "https://www.linkedin.com/feed/hashtag/{}",
    "mastodon": "https://mastodon.social/tags/{}",
    "bluesky": "https://bsky.app/hashtag/{}",
    "threads": "https://www.threads.net/search?q=%23{}",
}


def post_html(platform: str, text: str) -> str:
    """The text as the platform renders it: links, hashtags and mentions as links (a long
    address shortened for display, as the platforms do), line breaks kept."""
    out: list[str] = []
    last = 0
    for m in _TOKENS.finditer(text):
        out.append(html.escape(text[last : m.start()]))
        if m.group(1):
            url = m.group(1)
            shown = url.split("://", 1)[1]
            if len(shown) > 30:
                shown = shown[:29] + "…"
            out.append(f'<a href="{html.escape(url)}" rel="noopener">{html.escape(shown)}</a>')
        elif m.group(2):
            tag = m.group(2)
            href = _TAG_URLS[platform].format(tag)
            out.append(f'<a href="{html.escape(href)}" rel="noopener">#{html.escape(tag)}</a>')
        else:
            out.append(f'<span class="vermelding">@{html.escape(m.group(3))}</span>')
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out).replace("\n", "<br>\n")


def _waiting_first(v: DraftView) -> tuple[int, str]:
    return (0 if v.status in WAITING else 1, v.draft.created or v.draft.published or "")


def _month(v: DraftView, desk: Desk) -> str:
    return month_of(v.draft.published, desk.config.site.tz) if v.draft.published else "onbekend"


def routes(desk: Desk) -> list[Route]:
    def now() -> datetime:
        return desk.clock()

    def draft_id(request: Request) -> str:
        return f"{request.path_params['item']}/{request.path_params['platform']}"

    async def queue(request: Request, session: Session, form: FormData | None) -> Response:
        config = desk.reload()
        views, problems = await run_in_threadpool(review.list_views, config, now())
        status = request.query_params.get("status", "")
        platform = request.query_params.get("platform", "")
        month = request.query_params.get("maand", "")
        counts = {
            "status": Counter(v.status for v in views),
            "platform": Counter(v.draft.platform for v in views),
            "maand": Counter(_month(v, desk) for v in views),
        }
        shown = [
            v
            for v in views
            if (not status or v.status == status)
            and (not platform or v.draft.platform == platform)
            and (not month or _month(v, desk) == month)
        ]
        shown.sort(key=_waiting_first)
        try:
            start = max(0, int(request.query_params.get("vanaf", "0")))
        except ValueError:
            start = 0
        filters = {"status": status, "platform": platform, "maand": month}
        more = None
        if start + PAGE_SIZE < len(shown):
            more = "/social?" + urlencode({**filters, "vanaf": start + PAGE_SIZE})
        months = sorted(counts["maand"], reverse=True)
        return desk.page(
            session,
            "social_queue.html",
            "Sociale media",
            current="/social",
            views=shown[start : start + PAGE_SIZE],
            total=len(shown),
            start=start,
            more=more,
            counts=counts,
            filters=filters,
            statuses=STATUS_LABELS,
            platforms=PLATFORM_LABELS,
            months=[(m, m if m == "onbekend" else month_label(m, config)) for m in months],
            problems=[str(p) for p in problems],
            exported=request.query_params.getlist("bestand"),
        )

    def draft_page(
        session: Session,
        draft_ref: str,
        status: int = 200,
        error: str = "",
        text: str | None = None,
        conflict: tuple[str, str] | None = None,
        notice: str = "",
    ) -> Response:
        config = desk.config
        try:
            stored = review.find(config, draft_ref)
        except KrimppostError as exc:
            return desk.notice(
                session, "Concept niet gevonden", 404, *(str(p) for p in exc.problems)
            )
        assert stored.draft is not None
        v = view(config, stored.draft, now())
        shown_text = v.draft.text if text is None else text
        platform = config.social[v.draft.platform]
        n = length(platform, shown_text)
        card = {
            "title": v.draft.title,
            "domain": urlsplit(v.draft.link).netloc if v.draft.link else "",
            "link": v.draft.link,
            "image": v.draft.image,
            "image_alt": v.draft.image_alt or "",
            "summary": _summary(desk, v.draft.item),
        }
        return desk.page(
            session,
            "social_draft.html",
            f"{v.platform_label}: {v.draft.title or v.draft.item}",
            status,
            current="/social",
            v=v,
            digest=stored.digest or "",
            text=shown_text,
            count=n,
            limit=platform.limit,
            unit=UNITS[v.draft.platform],
            post=post_html(v.draft.platform, v.draft.text),
            suggestion=post_html(v.draft.platform, v.draft.suggestion)
            if v.draft.suggestion
            else "",
            account=config.site.title,
            card=card,
            error=error,
            notice=notice,
            conflict=conflict,
            history=desk.accounts.audit_rows(draft_ref, 50),
            may_review=session.user.may("social"),
        )

    async def show(request: Request, session: Session, form: FormData | None) -> Response:
        desk.reload()
        notice = {
            "opgeslagen": "Opgeslagen.",
            "goedgekeurd": "Goedgekeurd.",
            "afgewezen": "Afgewezen.",
            "overgenomen": "Het nieuwe voorstel is overgenomen.",
        }.get(request.query_params.get("klaar", ""), "")
        return await run_in_threadpool(
            draft_page, session, draft_id(request), 200, "", None, None, notice
        )

    def act(session: Session, ref: str, form: FormData) -> Response:
        """One of the draft's forms: save, approve, reject or take the suggestion."""
        config = desk.reload()
        action = str(form.get("actie") or "")
        digest = str(form.get("digest") or "")
        text = form.get("tekst")
        text = None if text is None else str(text)
        try:
            if action == "opslaan" and text is not None:
                saved, before = review.save_text(config, ref, text, digest, now())
                if saved.draft.text != before:
                    desk.audit(session, "tekst bewerkt", ref, voor=before, na=saved.draft.text)
                done = "opgeslagen"
            elif action == "goedkeuren":
                before = review.find(config, ref).draft
                approved = review.approve(config, ref, session.user.name, now(), text, digest)
                detail: dict[str, Any] = {"tekst": approved.draft.text}
                if before is not None and before.text != approved.draft.text:
                    detail["voor"] = before.text
                desk.audit(session, "goedgekeurd", ref, **detail)
                done = "goedgekeurd"
            elif action == "afwijzen":
                reason = str(form.get("reden") or "").strip()
                if not reason:
                    return draft_page(session, ref, 422, "Vul een reden in om af te wijzen.", text)
                review.reject(config, ref, session.user.name, reason, now(), digest)
                desk.audit(session, "afgewezen", ref, reden=reason)
                done = "afgewezen"
            elif action == "overnemen":
                before = review.find(config, ref).draft
                taken = review.take_suggestion(config, ref, now(), digest)
                desk.audit(
                    session,
                    "voorstel overgenomen",
                    ref,
                    voor=before.text if before else "",
                    na=taken.draft.text,
                )
                done = "overgenomen"
            else:
                return draft_page(session, ref, 400, "Onbekende actie.", text)
        except review.EditConflict as exc:
            mine = text if text is not None else ""
            return draft_page(
                session, ref, 409, str(exc.problems[0].message), mine, (mine, exc.current)
            )
        except KrimppostError as exc:
            message = "; ".join(p.message for p in exc.problems)
            return draft_page(session, ref, 422, message, text)
        return RedirectResponse(f"/social/{ref}?klaar={done}", 303)

    async def post(request: Request, session: Session, form: FormData | None) -> Response:
        assert form is not None
        return await run_in_threadpool(act, session, draft_id(request), form)

    async def count(request: Request, session: Session, form: FormData | None) -> Response:
        """The server's own count of a text being typed (the page asks as you type)."""
        assert form is not None
        platform_id = request.path_params["platform"]
        platform = desk.config.social.get(platform_id)
        if platform is None:
            return JSONResponse({"fout": "onbekend platform"}, 404)
        n = length(platform, str(form.get("tekst") or "").replace("\r\n", "\n"))
        return JSONResponse(
            {
                "lengte": n,
                "limiet": platform.limit,
                "eenheid": UNITS[platform_id],
                "te_lang": n > platform.limit,
                "tekst": f"{n} van {platform.limit}",
            }
        )

    def do_export(session: Session) -> list[str]:
        config = desk.reload()
        result = exporting.export(config, now(), "buffer")
        files = [f.name for f in result.files]
        desk.audit(session, "geëxporteerd", "", bestanden=files, concepten=len(result.rows))
        return files

    async def export(request: Request, session: Session, form: FormData | None) -> Response:
        try:
            files = await run_in_threadpool(do_export, session)
        except KrimppostError as exc:
            return desk.notice(
                session, "Exporteren lukt niet", 422, *(str(p) for p in exc.problems)
            )
        if not files:
            return desk.notice(
                session,
                "Niets te exporteren",
                200,
                "Er zijn geen goedgekeurde concepten die nog niet geëxporteerd zijn.",
            )
        query = urlencode([("bestand", f) for f in files])
        return RedirectResponse(f"/social?{query}", 303)

    async def download(request: Request, session: Session, form: FormData | None) -> Response:
        name = request.path_params["name"]
        if "/" in name or name.startswith(".") or not name.endswith((".csv", ".json")):
            return desk.notice(session, "Niet gevonden", 404, "Dit bestand bestaat niet.")
        outbox = Outbox(desk.config.outbox_dir)
        path = outbox.path_for(f"{exporting.EXPORT_DIR}/{name}")
        real, folder = path.resolve(), outbox.path_for(exporting.EXPORT_DIR).resolve()
        if real.parent != folder or not real.is_file():
            return desk.notice(session, "Niet gevonden", 404, "Dit bestand bestaat niet.")
        desk.audit(session, "export gedownload", "", bestand=name)
        media = "text/csv; charset=utf-8" if name.endswith(".csv") else "application/json"
        return Response(
            real.read_bytes(),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    g = desk.guarded
    return [
        Route("/social", g("social", queue), methods=["GET"]),
        Route("/social/exporteren", g("social", export), methods=["POST"]),
        Route("/social/export/{name}", g("social", download), methods=["GET"]),
        Route("/social/{item}/{platform}", g("social", show), methods=["GET"]),
        Route("/social/{item}/{platform}", g("social", post), methods=["POST"]),
        Route("/social/{item}/{platform}/tellen", g("social", count), methods=["POST"]),
    ]


_OG_DESCRIPTION = regex.compile(r'<meta property="og:description" content="([^"]*)">')


def _summary(desk: Desk, item_id: str) -> str:
    """The summary of the link card: the Open Graph description of the item's built page,
    which is what a platform reads when it makes the card ("" before the first build)."""
    page = desk.config.outbox_dir / "site" / item_path(item_id) / "index.html"
    try:
        with page.open("rb") as f:
            head = f.read(16_384).decode("utf-8", "replace")
    except OSError:
        return ""
    found = _OG_DESCRIPTION.search(head)
    return html.unescape(found.group(1)) if found else ""
