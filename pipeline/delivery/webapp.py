"""`krimppost serve`: preview of outbox/site/, one-click unsubscribe and double opt-in.

A Starlette application (served by uvicorn):

- `POST <unsubscribe path><token>`: RFC 8058 one-click. The body must carry
  `List-Unsubscribe=One-Click`; the subscriber is unsubscribed at once; the answer is a
  200 page, with no cookie and no redirect.
- `GET <unsubscribe path><token>`: a Dutch page with a button (a form that POSTs the same
  body). A GET never changes anything: mail scanners fetch links.
- `GET/POST <prefix>aanmelden`: the subscribe form. A POST records the request and mails
  a confirmation link; the page says the same whatever the address (no enumeration).
  Rate-limited per client and CSRF-protected with a signed double-submit cookie (HMAC of a
  random cookie under a secret from the environment variable named by
  `[serve] secret_env`, or else one generated once and kept in the state store).
- `GET <prefix>bevestigen/<token>`: a Dutch page with a button (a form POST to the same
  URL, CSRF-protected like the subscribe form); a GET or HEAD never confirms (mail scanners
  fetch links). `POST <prefix>bevestigen/<token>`: activates the subscription.
- `GET/POST <prefix>voorkeuren/<token>`: the preference page (pipeline/delivery/preferences.py).
- Unknown, forged or expired tokens all get the same 404 page.

Token pages are sent with `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, so
a token never leaks through a Referer header or a shared cache, and are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.config import Config, load_config
from pipeline.delivery import sender
from pipeline.delivery.middleware import BodyLimit, SecurityHeaders
from pipeline.delivery.preferences import Preferences
from pipeline.delivery.subscribers import (
    ALL_TRACKS,
    AddressError,
    Subscriber,
    SubscriberStore,
    TrackError,
    ascii_address,
    normalise,
    parse_tracks,
    track_set,
)
from pipeline.delivery.webforms import (
    CSRF_COOKIE,
    PRIVATE_HEADERS,
    cross_site,
    csrf_cookie,
    set_csrf_cookie,
)
from pipeline.render import message, templates
from pipeline.render.message import POLICY, unsubscribe_base
from pipeline.render.site import Site
from pipeline.state import StateStore, StoreAddress, ratelimit

log = logging.getLogger("krimppost.serve")

ONE_CLICK = "List-Unsubscribe=One-Click"
MAX_BODY = 16_384
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


class RateLimiter:
    """At most `limit` events per `window` seconds per client, counted in the state store
    (pipeline/state/ratelimit.py), so every serve process of the store shares the count.
    A client is stored as a keyed hash of its address, not the address."""

    def __init__(self, app: App, limit: int, window: float) -> None:
        self.app = app
        self.limit = limit
        self.window = window

    def allow(self, client: str) -> tuple[bool, int]:
        """(allowed, seconds until the next event would be allowed)."""
        key = hmac.new(self.app.secret, client.encode(), hashlib.sha256).hexdigest()[:32]
        with StateStore(self.app.store) as state:
            return ratelimit.allow(state.conn, key, self.limit, self.window)


def _path_of(url: str) -> str:
    path = urlsplit(url).path or "/"
    return path if path.endswith("/") else path + "/"


class App:
    """Everything the routes need, built once from the project's config."""

    def __init__(self, root: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.root = root
        self.config: Config = load_config(root)
        self.clock = clock or (lambda: datetime.now(UTC))
        config = self.config
        self.store = StoreAddress.of(config)
        self.public_url = config.serve.public_url
        self.prefix = _path_of(self.public_url)
        self.unsubscribe_path = _path_of(unsubscribe_base(config))
        self.dirs = templates.template_dirs(config.templates_dir)
        self._env_lock = threading.Lock()
        self.env = templates.environment(self.dirs, config.site.tz)
        self._site = Site(config, lambda: self.env, self.dirs, (), self.clock(), "")
        # where each kind of page sits in the site (navigation, canonical link)
        base = self._site.base_path
        self.paths = {
            "form": self.prefix.removeprefix(base) + "aanmelden",
            "confirm": self.prefix.removeprefix(base) + "bevestigen/",
            "unsubscribe": self.unsubscribe_path.removeprefix(base),
            "preferences": self.prefix.removeprefix(base) + "voorkeuren/",
            "other": "404.html",
        }
        with StateStore(self.store) as state:
            store = SubscriberStore(state, config)
            env_name = config.serve.secret_env
            secret = os.environ.get(env_name, "") if env_name else ""
            self.secret = (secret or store.meta("csrf_secret")).encode()
            store.purge_expired(self.clock())
        self.limiter = RateLimiter(
            self, config.serve.subscribe_limit, config.serve.subscribe_window
        )

    # rendering -------------------------------------------------------------------------

    def page(
        self,
        name: str,
        title: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        kind: str = "other",
        **context: Any,
    ) -> HTMLResponse:
        # `kind` gives the page's place in the site (navigation, canonical link); a token
        # never goes into it.
        with self._env_lock:  # one Jinja environment, rendered from worker threads
            body = self._site.render(
                f"serve/{name}",
                self.paths[kind],
                page_title=f"{title} | {self.config.site.title}",
                title=title,
                subscribe_url=self.prefix + "aanmelden",
                **context,
            )
        # SECURITY_HEADERS are added to every response, these pages' too, by the middleware
        return HTMLResponse(body, status, headers={**PRIVATE_HEADERS, **(headers or {})})

    def not_found(self) -> HTMLResponse:
        return self.page("404.html", "Pagina niet gevonden", 404)

    def track_choices(self, chosen: frozenset[str] | None = None) -> list[dict[str, Any]]:
        return [
            {
                "id": t.id,
                "label": t.label,
                "description": t.description,
                "checked": bool(chosen and t.id in chosen),
            }
            for t in self.config.tracks.values()
        ]

    def tracks_line(self, stored: str) -> str:
        chosen = track_set(stored)
        labels = [t.label for t in self.config.tracks.values() if chosen is None or t.id in chosen]
        return ", ".join(labels)

    # CSRF ------------------------------------------------------------------------------

    def csrf_for(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str | None, token: str) -> bool:
        return bool(cookie) and hmac.compare_digest(self.csrf_for(cookie or ""), token)

    def form(
        self,
        request: Request,
        status: int = 200,
        email: str = "",
        chosen: frozenset[str] | None = None,
        errors: dict[str, str] | None = None,
        notice: str = "",
    ) -> HTMLResponse:
        path = self.prefix + "aanmelden"
        return self.form_page(
            request,
            "subscribe.html",
            "Aanmelden voor de nieuwsbrief",
            status,
            path,
            kind="form",
            action=path,
            email=email,
            choices=self.track_choices(chosen),
            errors=errors or {},
            notice=notice,
            consent_version=self.config.subscribers.consent_version,
        )

    def form_page(
        self, request: Request, template: str, title: str, status: int, path: str, **context: Any
    ) -> HTMLResponse:
        """A page with a form: its CSRF token, and the cookie for `path` when it is new."""
        cookie, fresh = csrf_cookie(request)
        response = self.page(template, title, status, csrf=self.csrf_for(cookie), **context)
        if fresh:
            set_csrf_cookie(response, request, cookie, path)
        return response

    # confirmation mail -------------------------------------------------------------------

    def confirmation_mail(self, to: str, token: str, tracks: str) -> tuple[str, bytes, bool]:
        return self.mail(
            to,
            f"Bevestig je aanmelding voor de nieuwsbrief van {self.config.site.title}",
            "serve/confirm_mail.txt",
            "aanmelding",
            confirm_url=self.public_url + "bevestigen/" + token,
            tracks_line=self.tracks_line(tracks),
        )

    def mail(
        self, to: str, subject: str, template: str, kind: str, **context: Any
    ) -> tuple[str, bytes, bool]:
        """A mail of the web app to `to`: (envelope address, bytes, needs SMTPUTF8)."""
        config = self.config
        nl = config.newsletter
        with self._env_lock:
            text = templates.render(
                self.env,
                template,
                site=config.site,
                days=config.subscribers.confirm_days,
                **context,
            )
        msg = EmailMessage(policy=POLICY)
        msg["From"] = formataddr((nl.from_name, nl.from_address))
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(config.site.tz).replace(microsecond=0))
        # Formed as every mail of the project is, on the resolved message_id_domain (base_url's
        # host by default): make_msgid(domain="") gave an invalid <…@>.
        msg["Message-ID"] = message.message_id(config, kind, secrets.token_hex(12))
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text, charset="utf-8", cte="quoted-printable")
        address = ascii_address(to)
        if address is None:
            return to, msg.as_bytes(policy=POLICY.clone(utf8=True)), True
        return address, msg.as_bytes(), False

    # handlers ----------------------------------------------------------------------------

    def store_call(self, fn: Callable[[SubscriberStore], Any]) -> Any:
        with StateStore(self.store) as state:
            return fn(SubscriberStore(state, self.config))

    async def subscribe_form(self, request: Request) -> Response:
        return self.form(request)

    async def subscribe(self, request: Request) -> Response:
        client = request.client.host if request.client else "onbekend"
        allowed, retry = self.limiter.allow(client)
        if not allowed:
            return self.page(
                "notice.html",
                "Even geduld",
                429,
                headers={"Retry-After": str(retry)},
                paragraphs=[
                    "Er zijn vanaf dit adres te veel aanmeldingen verstuurd.",
                    f"Probeer het over {max(1, retry // 60)} minuten opnieuw.",
                ],
            )
        if cross_site(request):
            return self._csrf_failed(request)
        form = await request.form(max_files=0, max_fields=50)
        email = str(form.get("email") or "").strip()
        raw_tracks = [str(v) for v in form.getlist("tracks")]
        if not self.csrf_ok(request.cookies.get(CSRF_COOKIE), str(form.get("csrf") or "")):
            return self._csrf_failed(request, email)
        errors: dict[str, str] = {}
        chosen: frozenset[str] | None = frozenset(raw_tracks) or None
        try:
            tracks = parse_tracks(raw_tracks, self.config)
        except TrackError:
            errors["tracks"] = "Kies alleen onderwerpen uit de lijst."
            tracks = ALL_TRACKS
        if not email:
            errors["email"] = "Vul je e-mailadres in."
        else:
            try:
                normalise(email)
            except AddressError:
                errors["email"] = (
                    "Dit is geen geldig e-mailadres. Vul een adres in zoals naam@voorbeeld.nl."
                )
        if errors:
            return self.form(request, 400, email=email, chosen=chosen, errors=errors)
        now = self.clock()
        outcome = await run_in_threadpool(
            self.store_call, lambda store: _purge_then_request(store, email, tracks, now)
        )
        if outcome is not None:
            address, token = outcome
            to, data, utf8 = self.confirmation_mail(address, token, tracks)
            try:
                await run_in_threadpool(sender.send_one, self.config, to, data, utf8)
            except Exception as exc:  # SMTP down, refused, ...: let the person retry later
                log.warning("bevestigingsmail niet verstuurd: %s", exc)
                await run_in_threadpool(
                    self.store_call, lambda store: store.withdraw_request(token)
                )
                return self.page(
                    "notice.html",
                    "Aanmelden lukt nu niet",
                    503,
                    paragraphs=[
                        "We konden de e-mail met de bevestigingslink nu niet versturen.",
                        "Probeer het later opnieuw.",
                    ],
                )
            log.info("aanmelding ontvangen; bevestigingsmail verstuurd")
        return self.page(
            "subscribe_sent.html",
            "Bevestig je aanmelding",
            kind="form",
            days=self.config.subscribers.confirm_days,
        )

    def _csrf_failed(self, request: Request, email: str = "") -> Response:
        return self.form(
            request,
            403,
            email=email,
            notice="Het formulier was verlopen. Controleer je gegevens en verstuur het opnieuw.",
        )

    def confirm_page(
        self, request: Request, found: Subscriber, tracks: str, status: int = 200, notice: str = ""
    ) -> Response:
        """The page with the button that confirms; its form carries the CSRF token."""
        path = self.prefix + "bevestigen/"
        return self.form_page(
            request,
            "confirm.html",
            "Bevestig je aanmelding",
            status,
            path,
            kind="confirm",
            masked=found.masked,
            tracks_line=self.tracks_line(tracks),
            action=path + request.path_params["token"],
            notice=notice,
        )

    def confirmed_page(self, found: Subscriber) -> Response:
        return self.page(
            "confirmed.html",
            "Je aanmelding is bevestigd",
            kind="confirm",
            tracks_line=self.tracks_line(found.tracks),
            unsubscribe_url=self.unsubscribe_path + found.token,
        )

    async def _awaiting(self, request: Request) -> Response | tuple[Subscriber, str]:
        """The subscriber and the tracks a confirmation link asks for, or the page to answer
        with instead: 404 for an unknown link, "bevestigd" for one that confirmed already."""
        token = request.path_params["token"]
        now = self.clock()
        found = await run_in_threadpool(self.store_call, lambda store: store.awaiting(token, now))
        if found is None:
            return self.not_found()
        subscriber, tracks = found
        if tracks is None:
            return self.confirmed_page(subscriber)
        return subscriber, tracks

    async def confirm_form(self, request: Request) -> Response:
        # GET and HEAD: mail scanners fetch links, so only the button's POST confirms
        found = await self._awaiting(request)
        if isinstance(found, Response):
            return found
        return self.confirm_page(request, *found)

    async def confirm(self, request: Request) -> Response:
        found = await self._awaiting(request)
        if isinstance(found, Response):
            return found
        subscriber, tracks = found
        form = await request.form(max_files=0, max_fields=10)
        csrf = str(form.get("csrf") or "")
        if cross_site(request) or not self.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
            return self.confirm_page(
                request,
                subscriber,
                tracks,
                403,
                notice="De pagina was verlopen. Klik nog een keer op de knop om te bevestigen.",
            )
        token, now = request.path_params["token"], self.clock()
        confirmed = await run_in_threadpool(
            self.store_call, lambda store: store.confirm(token, now)
        )
        if confirmed is None:
            return self.not_found()
        log.info("aanmelding bevestigd")
        return self.confirmed_page(confirmed)

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = await run_in_threadpool(self.store_call, lambda store: store.by_token(token))
        if found is None:
            return self.not_found()
        if found.status == "unsubscribed":
            return self.page(
                "unsubscribed.html", "Je bent afgemeld", kind="unsubscribe", already=True
            )
        return self.page(
            "unsubscribe.html",
            "Afmelden voor de nieuwsbrief",
            kind="unsubscribe",
            masked=found.masked,
            action=self.unsubscribe_path + token,
        )

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        body = await request.body()
        one_click = body.strip() == ONE_CLICK.encode()
        from_page = False
        if not one_click:
            try:
                form = await request.form(max_files=0, max_fields=10)
            except Exception:
                form = None
            one_click = form is not None and form.get("List-Unsubscribe") == "One-Click"
            from_page = form is not None and form.get("bron") == "pagina"
        if not one_click:
            return self.page(
                "notice.html",
                "Ongeldig verzoek",
                400,
                paragraphs=["Dit verzoek mist 'List-Unsubscribe=One-Click'."],
            )
        now = self.clock()
        reason = "afmeldpagina" if from_page else "one-click"
        found = await run_in_threadpool(
            self.store_call, lambda store: store.unsubscribe(token, now, reason)
        )
        if found is None:
            return self.not_found()
        log.info("afgemeld (%s)", reason)
        return self.page("unsubscribed.html", "Je bent afgemeld", kind="unsubscribe", already=False)

    # the application ---------------------------------------------------------------------

    def starlette(self) -> Starlette:
        async def not_found(request: Request, exc: Exception) -> Response:
            if isinstance(exc, HTTPException) and exc.status_code == 405:
                return self.page(
                    "notice.html",
                    "Methode niet toegestaan",
                    405,
                    paragraphs=["Deze methode is hier niet toegestaan."],
                )
            return self.not_found()

        routes: list[Any] = [
            Route(self.prefix + "aanmelden", self.subscribe_form, methods=["GET"]),
            Route(self.prefix + "aanmelden", self.subscribe, methods=["POST"]),
            Route(self.prefix + "bevestigen/{token}", self.confirm_form, methods=["GET"]),
            Route(self.prefix + "bevestigen/{token}", self.confirm, methods=["POST"]),
            Route(self.unsubscribe_path + "{token}", self.unsubscribe_page, methods=["GET"]),
            Route(self.unsubscribe_path + "{token}", self.unsubscribe, methods=["POST"]),
            *Preferences(self).routes(),
        ]
        site_dir = self.config.outbox_dir / "site"
        site_path = _path_of(self.config.site.base_url)
        if site_dir.is_dir():
            preview: Any = StaticFiles(directory=site_dir, html=True)
        else:

            async def preview(scope: Any, receive: Any, send: Any) -> None:
                response = self.page(
                    "notice.html",
                    "Nog geen site",
                    404,
                    paragraphs=["Er is nog niets gebouwd. Draai eerst krimppost build."],
                )
                await response(scope, receive, send)

        routes.append(Mount(site_path.rstrip("/") or "/", app=preview))

        def too_large() -> Response:
            return self.page(
                "notice.html",
                "Verzoek te groot",
                413,
                paragraphs=[f"Een verzoek mag hier hoogstens {MAX_BODY // 1024} kB zijn."],
            )

        return Starlette(
            routes=routes,
            exception_handlers={404: not_found, 405: not_found},
            middleware=[
                Middleware(SecurityHeaders, headers=SECURITY_HEADERS),
                Middleware(BodyLimit, limit=MAX_BODY, reject=too_large),
            ],
        )


def _purge_then_request(
    store: SubscriberStore, email: str, tracks: str, now: datetime
) -> tuple[str, str] | None:
    store.purge_expired(now)  # unconfirmed requests past confirm_days are forgotten
    return store.request(email, tracks, now)


def create_app(root: Path, clock: Callable[[], datetime] | None = None) -> Starlette:
    return App(root, clock).starlette()
