"""`krimppost desk`: the staff's web app: social review, the editors' preview, the
newsletter.

A Starlette application beside `serve` (which stays the public part). Every page but
`/inloggen` needs a session (pipeline/desk/auth.py); what a role may do is checked here, on
the server, for every request (403 otherwise), whatever the pages show. Pages are Dutch,
rendered from `templates/desk/` (a project may override them as any template).

The routes of each part are in their own module (social_pages, preview_pages,
newsletter_pages); this one holds what they share: the gate, the page shell, the audit.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline.config import Config, load_config
from pipeline.delivery.middleware import BodyLimit, SecurityHeaders
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.delivery.webforms import cross_site
from pipeline.desk.accounts import Accounts, Session
from pipeline.desk.auth import Gate, client_of, safe_next
from pipeline.render import templates
from pipeline.state import StateStore, StoreAddress

if TYPE_CHECKING:
    import jinja2

T = TypeVar("T")
log = logging.getLogger("krimppost.desk")

MAX_BODY = 65_536  # a post's text and a reason, with room to spare
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    # Link cards and previews show an item's image (a podcast its audio) from the public
    # site; scripts only the desk's own.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; media-src 'self' https:; "
        "frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
}
NAVIGATION = (
    ("/social", "Sociale media", "social"),
    ("/voorbeeld", "Voorbeeld", "preview"),
    ("/nieuwsbrief", "Nieuwsbrief", "newsletter"),
    ("/logboek", "Logboek", "audit"),
)
STATIC = {
    "desk.css": "text/css; charset=utf-8",
    "desk.js": "text/javascript; charset=utf-8",
    "voorbeeld.css": "text/css; charset=utf-8",
}

Handler = Callable[[Request, Session, FormData | None], Awaitable[Response]]


class Desk:
    """Everything the routes need, built once from the project's config."""

    def __init__(self, root: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.root = root
        self.config: Config = load_config(root)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = StoreAddress.of(self.config)
        self.accounts = Accounts(self.store, lambda: self.clock().timestamp())
        env_name = self.config.desk.secret_env
        secret = os.environ.get(env_name, "") if env_name else ""
        if not secret:
            with StateStore(self.store) as state:
                secret = SubscriberStore(state, self.config).meta("desk_secret")
        self.gate = Gate(self.config, self.accounts, secret.encode())
        self.dirs = templates.template_dirs(self.config.templates_dir)
        self._env_lock = threading.Lock()
        self.env = templates.environment(self.dirs, self.config.site.tz)

    def reload(self) -> Config:
        """The config as it is now: an edit of config.toml counts from the next request."""
        self.config = load_config(self.root)
        return self.config

    # pages -------------------------------------------------------------------------------

    def render(self, name: str, **context: Any) -> str:
        with self._env_lock:  # one Jinja environment, rendered from worker threads
            return templates.render(self.env, f"desk/{name}", **context)

    def with_env(self, work: Callable[[jinja2.Environment], T]) -> T:
        """`work` with the desk's template environment (site templates too), one at a time."""
        with self._env_lock:
            return work(self.env)

    def page(
        self,
        session: Session | None,
        name: str,
        title: str,
        status: int = 200,
        current: str = "",
        **context: Any,
    ) -> HTMLResponse:
        nav = []
        if session is not None:
            nav = [
                {"url": url, "label": label, "current": current == url}
                for url, label, right in NAVIGATION
                if session.user.may(right)
            ]
        body = self.render(
            name,
            title=title,
            site_title=self.config.site.title,
            user=session.user if session else None,
            csrf=session.csrf if session else "",
            nav=nav,
            **context,
        )
        return HTMLResponse(body, status)

    def notice(
        self, session: Session | None, title: str, status: int, *paragraphs: str
    ) -> HTMLResponse:
        return self.page(session, "notice.html", title, status, paragraphs=list(paragraphs))

    def audit(self, session: Session, action: str, subject: str, **detail: Any) -> None:
        self.accounts.audit(session.user.name, action, subject, detail)

    # the gate ----------------------------------------------------------------------------

    def guarded(self, right: str | None, handler: Handler) -> Callable[[Request], Any]:
        """`handler` for a signed-in person with `right` (None: any role); a POST also
        needs the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            visitor = await run_in_threadpool(self.gate.visitor, request)
            if visitor is None:
                if request.method in ("GET", "HEAD"):
                    target = request.url.path
                    if request.url.query:
                        target += "?" + request.url.query
                    return RedirectResponse("/inloggen?terug=" + quote(target, safe=""), 303)
                return self.notice(None, "Niet ingelogd", 403, "Log eerst in.")
            session = visitor.session
            if right is not None and not session.user.may(right):
                return self.notice(
                    session,
                    "Geen toegang",
                    403,
                    f"Je rol ({session.user.role}) mag dit niet.",
                )
            form = None
            if request.method == "POST":
                if cross_site(request):
                    return self.notice(
                        session, "Geweigerd", 403, "Dit verzoek komt van een andere site."
                    )
                form = await request.form(max_files=0, max_fields=20)
                token = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
                if not self.gate.csrf_ok(session, token):
                    return self.notice(
                        session,
                        "Formulier verlopen",
                        403,
                        "Het formulier mist een geldige beveiligingscode. Laad de pagina opnieuw "
                        "en probeer het nog eens.",
                    )
            response = await handler(request, session, form)
            if visitor.new_cookie:
                self.gate.set_session_cookie(response, request, session)
            return response

        return endpoint

    # signing in and out ------------------------------------------------------------------

    async def login_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        token, fresh = self.gate.login_token(request)
        response = self.page(
            None,
            "login.html",
            "Inloggen",
            status,
            login_csrf=token,
            error=error,
            next=safe_next(request.query_params.get("terug", "/")),
        )
        if fresh:
            self.gate.set_login_cookie(response, request, fresh)
        return response

    async def login(self, request: Request) -> Response:
        if cross_site(request):
            return self.notice(None, "Geweigerd", 403, "Dit verzoek komt van een andere site.")
        form = await request.form(max_files=0, max_fields=10)
        if not self.gate.login_token_ok(request, str(form.get("csrf") or "")):
            return self.notice(
                None,
                "Formulier verlopen",
                403,
                "Het formulier mist een geldige beveiligingscode. Laad de pagina opnieuw.",
            )
        name = str(form.get("gebruikersnaam") or "")[:200]
        password = str(form.get("wachtwoord") or "")[:1000]
        session = await run_in_threadpool(self.accounts.sign_in, name, password, client_of(request))
        if session is None:
            log.info("mislukte inlog vanaf %s", client_of(request))
            return await self.login_form(
                request,
                "Inloggen is niet gelukt. Controleer je gebruikersnaam en wachtwoord. Na vijf "
                "mislukte pogingen is een account een kwartier geblokkeerd.",
                401,
            )
        target = safe_next(str(form.get("terug") or "/"))
        response = RedirectResponse(target, 303)
        self.gate.set_session_cookie(response, request, session)
        return response

    async def logout(self, request: Request, session: Session, form: FormData | None) -> Response:
        await run_in_threadpool(self.accounts.sign_out, session)
        response = RedirectResponse("/inloggen", 303)
        self.gate.clear_session_cookie(response)
        return response

    async def home(self, request: Request, session: Session, form: FormData | None) -> Response:
        for url, _label, right in NAVIGATION:
            if session.user.may(right):
                return RedirectResponse(url, 303)
        return self.notice(session, "Geen toegang", 403, "Je rol geeft geen toegang tot de desk.")

    async def audit_log(
        self, request: Request, session: Session, form: FormData | None
    ) -> Response:
        rows = await run_in_threadpool(self.accounts.audit_rows, None, 500)
        return self.page(session, "audit.html", "Logboek", current="/logboek", rows=rows)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return self.notice(None, "Pagina niet gevonden", 404, "Deze pagina bestaat niet.")
        for directory in self.dirs:
            path = directory / "desk" / name
            if path.is_file():
                return Response(path.read_bytes(), media_type=STATIC[name])
        return self.notice(None, "Pagina niet gevonden", 404, "Deze pagina bestaat niet.")

    # the application ---------------------------------------------------------------------

    def starlette(self) -> Starlette:
        from pipeline.desk import newsletter_pages, preview_pages, social_pages

        routes: list[Any] = [
            Route("/inloggen", self.login_form, methods=["GET"]),
            Route("/inloggen", self.login, methods=["POST"]),
            Route("/uitloggen", self.guarded(None, self.logout), methods=["POST"]),
            Route("/", self.guarded(None, self.home), methods=["GET"]),
            Route("/logboek", self.guarded("audit", self.audit_log), methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
            *social_pages.routes(self),
            *preview_pages.routes(self),
            *newsletter_pages.routes(self),
        ]

        async def not_found(request: Request, exc: Exception) -> Response:
            if isinstance(exc, HTTPException) and exc.status_code == 405:
                return self.notice(None, "Methode niet toegestaan", 405, "Dit kan hier niet.")
            return self.notice(None, "Pagina niet gevonden", 404, "Deze pagina bestaat niet.")

        def too_large() -> Response:
            return self.notice(
                None, "Verzoek te groot", 413, f"Hoogstens {MAX_BODY // 1024} kB per verzoek."
            )

        return Starlette(
            routes=routes,
            exception_handlers={404: not_found, 405: not_found},
            middleware=[
                Middleware(SecurityHeaders, headers=SECURITY_HEADERS),
                Middleware(BodyLimit, limit=MAX_BODY, reject=too_large),
            ],
        )


def create_app(root: Path, clock: Callable[[], datetime] | None = None) -> Starlette:
    return Desk(root, clock).starlette()
