"""The desk's preview for editors: `/voorbeeld` (every item and its state),
`/voorbeeld/<item>` (the item's page from its source, with a banner saying why it is not
online, reloading itself when the file is saved) and `/voorbeeld/site/…` (what the preview's
links point to: the built site, the site's static files, the files of content/)."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path

import regex
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pipeline.content import confine
from pipeline.desk import preview
from pipeline.desk.accounts import Session
from pipeline.desk.shell import Desk
from pipeline.errors import KrimppostError
from pipeline.render import templates

_MAIN = regex.compile(r"<main\b[^>]*>", regex.IGNORECASE)
_HEAD_END = regex.compile(r"</head\s*>", regex.IGNORECASE)
_BODY_END = regex.compile(r"</body\s*>", regex.IGNORECASE)


def _insert(page: str, pattern: regex.Pattern[str], text: str, after: bool) -> str:
    m = pattern.search(page)
    if m is None:
        return page + text if after else text + page
    at = m.end() if after else m.start()
    return page[:at] + text + page[at:]


def framed(page: str, banner: str, head: str, tail: str) -> str:
    """The site page with the preview's banner first in its main content, its stylesheet in
    the head and the reload marker at the end of the body."""
    page = _insert(page, _HEAD_END, head, after=False)
    page = _insert(page, _MAIN, banner, after=True)
    return _insert(page, _BODY_END, tail, after=False)


def routes(desk: Desk) -> list[Route]:
    sources: dict[str, str] = {}  # item id -> source file, as last seen

    def now() -> datetime:
        return desk.clock()

    async def listing(request: Request, session: Session, form: FormData | None) -> Response:
        config = desk.reload()
        found = await run_in_threadpool(preview.overview, config, now())
        sources.update({r.id: r.source for r in found.rows})
        tz = config.site.tz
        rows = [{"row": r, "label": r.label(tz)} for r in found.rows]
        counts = {key: sum(1 for r in found.rows if r.state == key) for key in preview.LABELS}
        return desk.page(
            session,
            "preview_list.html",
            "Voorbeeld",
            current="/voorbeeld",
            rows=rows,
            general=found.general,
            counts=counts,
            labels=preview.LABELS,
        )

    async def item_page(request: Request, session: Session, form: FormData | None) -> Response:
        config = desk.reload()
        item_id = request.path_params["item"]
        row = await run_in_threadpool(preview.find, config, item_id, now())
        if row is None:
            return desk.notice(
                session,
                "Niet gevonden",
                404,
                f"Er is geen item {item_id!r} in content/. Kies er een uit de lijst.",
            )
        sources[row.id] = row.source
        origin = str(request.base_url)
        shown = await run_in_threadpool(
            desk.with_env,
            lambda env: preview.render(config, row, now(), origin, lambda: env),
        )
        current = preview.version(config, row.source)
        marker = desk.render("preview_marker.html", item=row.id, version=current)
        if shown.page is None:
            return desk.page(
                session,
                "preview_problems.html",
                f"Voorbeeld: {row.source}",
                current="/voorbeeld",
                row=row,
                problems=shown.problems,
                marker=Markup(marker),
            )
        banner = desk.render(
            "preview_banner.html",
            row=row,
            why=preview.why(row, config),
            problems=shown.problems,
            public=config.site.base_url + f"berichten/{row.id}/",
        )
        head = '<link rel="stylesheet" href="/static/voorbeeld.css">\n'
        return HTMLResponse(framed(shown.page, banner, head, marker))

    async def item_version(request: Request, session: Session, form: FormData | None) -> Response:
        config = desk.config
        item_id = request.path_params["item"]
        source = sources.get(item_id)
        if source is None:
            row = await run_in_threadpool(preview.find, desk.reload(), item_id, now())
            if row is None:
                return JSONResponse({"versie": "weg"}, 404)
            source = sources[item_id] = row.source
        return JSONResponse({"versie": preview.version(config, source)})

    async def site_file(request: Request, session: Session, form: FormData | None) -> Response:
        config = desk.config
        rel = request.path_params["path"]
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts if p) or "\\" in rel:
            return desk.notice(session, "Niet gevonden", 404, "Dit bestand bestaat niet.")
        try:
            data = await run_in_threadpool(_site_bytes, desk, rel)
        except (KrimppostError, OSError):
            data = None
        if data is None:
            return desk.notice(
                session,
                "Niet gevonden",
                404,
                "Deze pagina of dit bestand staat niet in het gebouwde archief "
                f"({config.outbox_dir.name}/site/) en niet in content/.",
            )
        name = rel if rel and not rel.endswith("/") else rel + "index.html"
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/xml", "application/json"):
            kind += "; charset=utf-8"
        return Response(data, media_type=kind)

    right = "preview"
    return [
        Route("/voorbeeld", desk.guarded(right, listing), methods=["GET"]),
        Route("/voorbeeld/site/{path:path}", desk.guarded(right, site_file), methods=["GET"]),
        Route("/voorbeeld/{item}", desk.guarded(right, item_page), methods=["GET"]),
        Route("/voorbeeld/{item}/versie", desk.guarded(right, item_version), methods=["GET"]),
    ]


def _site_bytes(desk: Desk, rel: str) -> bytes | None:
    """A file under the preview's links: the site's static files from the templates, an
    item's file from content/ (a draft's too), anything else from the built site."""
    config = desk.config
    if rel.startswith("static/"):
        for directory in templates.template_dirs(config.templates_dir):
            if (directory / rel).is_file():
                return confine.read_confined(directory, rel, rel, "templates/")
        return None
    if rel.startswith("bestanden/"):
        inner = rel.removeprefix("bestanden/")
        if inner.lower().endswith(".md"):  # item sources are not files of the site
            return None
        content = config.content_dir
        if not (content / inner).is_file():
            return None
        return confine.read_confined(content, inner, f"content/{inner}", "content/")
    site = config.outbox_dir / "site"
    name = rel + "index.html" if not rel or rel.endswith("/") else rel
    path: Path = site / name
    if path.is_dir():
        name += "/index.html"
        path = site / name
    if not path.is_file():
        return None
    return confine.read_confined(site, name, f"site/{name}", "outbox/site/")
