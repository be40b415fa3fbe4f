"""The preference page of `krimppost serve`: `<prefix>voorkeuren/<token>`.

The token is the subscriber's unsubscribe token; every mail links to the page beside the
one-click unsubscribe link. A GET shows the page and changes nothing (mail scanners fetch
links). Each action is a form of its own that POSTs to the same URL with the CSRF field of
the App's signed double-submit cookie (its path is `<prefix>voorkeuren/`) and a field
`actie`: `onderwerpen`, `pauzeren`, `hervatten`, `adres`, `afmelden`, `downloaden`,
`wissen` (asks to confirm) and `wissen-bevestigd`. The answer is the page again with a
status message, or a result page: never a redirect, which would put the token into yet
another request line.

The download is a POST too, though it changes nothing: a link in a mail or on a page is
fetched by scanners and prefetchers, and a GET link to the data would hand a copy of it
to every one of them. A POST needs the person's click and this page's CSRF field.

A change of address mails a link `<prefix>voorkeuren/adres/<token>` (a token of its own)
to the new address; its GET shows a button, its POST (CSRF) makes the change. An unknown,
forged or expired token gets the App's one 404 page, for GET and POST alike.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.delivery import sender
from pipeline.delivery.selfservice import SelfService
from pipeline.delivery.subscribers import (
    AddressError,
    Subscriber,
    TrackError,
    normalise,
    parse_tracks,
    track_set,
)
from pipeline.delivery.webforms import CSRF_COOKIE, PRIVATE_HEADERS, cross_site
from pipeline.render.templates import dutch_date

log = logging.getLogger("krimppost.serve")

TITLE = "Je voorkeuren voor de nieuwsbrief"
MAX_PAUSE_DAYS = 365
ADDRESS_SENT = (
    "We hebben een bevestigingslink gestuurd naar het nieuwe adres, als het gebruikt kan "
    "worden. Tot je op die link klikt, blijft de nieuwsbrief naar je huidige adres gaan."
)
EXPIRED = "De pagina was verlopen. Probeer het nog een keer."
ONLY_ACTIVE = (
    "Dit kan alleen zolang je de nieuwsbrief ontvangt. Wil je hem weer ontvangen? "
    "Meld je dan opnieuw aan op de aanmeldpagina."
)


class Preferences:
    def __init__(self, app: Any) -> None:  # pipeline.delivery.webapp.App, which imports this
        self.app = app
        self.path = app.prefix + "voorkeuren/"

    def routes(self) -> list[Route]:
        return [
            Route(self.path, self.general, methods=["GET"]),
            Route(self.path + "adres/{token}", self.address_form, methods=["GET"]),
            Route(self.path + "adres/{token}", self.address_confirm, methods=["POST"]),
            Route(self.path + "{token}", self.show, methods=["GET"]),
            Route(self.path + "{token}", self.act, methods=["POST"]),
        ]

    # helpers -----------------------------------------------------------------------------

    def _call(self, fn: Callable[[SelfService], Any]) -> Any:
        return self.app.store_call(lambda store: fn(SelfService(store)))

    async def _run(self, fn: Callable[[SelfService], Any]) -> Any:
        return await run_in_threadpool(self._call, fn)

    def _today(self) -> date:
        return self.app.clock().astimezone(self.app.config.site.tz).date()

    def page(
        self,
        request: Request,
        found: Subscriber,
        status: int = 200,
        message: str = "",
        notice: str = "",
        errors: dict[str, str] | None = None,
        chosen: frozenset[str] | None = None,
        email: str = "",
        pause_value: str = "",
    ) -> Response:
        now = self.app.clock()
        paused = found.paused_until if found.paused_until and found.paused_until > now else None
        today = self._today()
        if not pause_value and paused is not None:
            pause_value = paused.astimezone(self.app.config.site.tz).date().isoformat()
        return self.app.form_page(
            request,
            "preferences.html",
            TITLE,
            status,
            self.path,
            kind="preferences",
            action=self.path + request.path_params["token"],
            masked=found.masked,
            active=found.status == "active",
            subscriber_status=found.status,
            choices=self.app.track_choices(
                chosen if chosen is not None else track_set(found.tracks)
            ),
            paused_until=paused,
            pause_value=pause_value,
            pause_min=(today + timedelta(days=1)).isoformat(),
            pause_max=(today + timedelta(days=MAX_PAUSE_DAYS)).isoformat(),
            days=self.app.config.subscribers.confirm_days,
            email=email,
            errors=errors or {},
            message=message,
            notice=notice,
        )

    async def _subscriber(self, request: Request) -> Subscriber | None:
        token = request.path_params["token"]
        return await run_in_threadpool(self.app.store_call, lambda store: store.by_token(token))

    def _csrf_ok(self, request: Request, form: Any) -> bool:
        csrf = str(form.get("csrf") or "")
        return not cross_site(request) and self.app.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf)

    # the page ----------------------------------------------------------------------------

    async def general(self, request: Request) -> Response:
        # The list copy and the web version of an issue carry the link without a token.
        return self.app.page(
            "notice.html",
            TITLE,
            kind="preferences",
            paragraphs=[
                "Je voorkeuren wijzig je met de persoonlijke link onderaan elke nieuwsbrief "
                "die je van ons krijgt: kies je onderwerpen, pauzeer de nieuwsbrief, wijzig je "
                "adres of bekijk en wis je gegevens.",
                "Nog geen abonnee? Meld je aan op de aanmeldpagina.",
            ],
        )

    async def show(self, request: Request) -> Response:
        found = await self._subscriber(request)
        if found is None:
            return self.app.not_found()
        return self.page(request, found)

    async def act(self, request: Request) -> Response:
        found = await self._subscriber(request)
        if found is None:
            return self.app.not_found()
        form = await request.form(max_files=0, max_fields=50)
        if not self._csrf_ok(request, form):
            return self.page(request, found, 403, notice=EXPIRED)
        action = str(form.get("actie") or "")
        token = request.path_params["token"]
        now = self.app.clock()
        if action == "downloaden":
            return await self._download(token, now)
        if action == "wissen":
            return self.app.form_page(
                request,
                "erase.html",
                "Je gegevens wissen",
                200,
                self.path,
                kind="preferences",
                masked=found.masked,
                action=self.path + token,
            )
        if action == "wissen-bevestigd":
            if not await self._run(lambda s: s.erase(token, now)):
                return self.app.not_found()
            log.info("gegevens gewist via de voorkeurenpagina")
            return self.app.page(
                "notice.html",
                "Je gegevens zijn gewist",
                kind="preferences",
                paragraphs=[
                    "We hebben je e-mailadres, je onderwerpen, het bewijs van je toestemming en "
                    "de lijst van verstuurde nieuwsbrieven gewist. Je ontvangt geen nieuwsbrief "
                    "meer.",
                    "We bewaren alleen een onomkeerbare code van je adres, zodat het niet "
                    "opnieuw wordt toegevoegd zonder dat je het zelf vraagt.",
                ],
            )
        handler = _ACTIONS.get(action)
        if handler is None:
            return self.page(request, found, 400, notice="Dit verzoek kennen we niet.")
        if found.status != "active":
            return self.page(request, found, 409, notice=ONLY_ACTIVE)
        return await handler(self, request, found, form, now)

    async def _tracks(
        self, request: Request, found: Subscriber, form: Any, now: datetime
    ) -> Response:
        raw = [str(v) for v in form.getlist("tracks")]
        try:
            tracks = parse_tracks(raw, self.app.config)
        except TrackError:
            errors = {"tracks": "Kies alleen onderwerpen uit de lijst."}
            return self.page(request, found, 400, errors=errors, chosen=frozenset(raw))
        token = request.path_params["token"]
        changed = await self._run(lambda s: s.set_tracks(token, tracks))
        if changed is None:
            return self.app.not_found()
        return self.page(request, changed, message="Je onderwerpen zijn opgeslagen.")

    async def _pause(
        self, request: Request, found: Subscriber, form: Any, now: datetime
    ) -> Response:
        raw = str(form.get("tot") or "").strip()
        today = self._today()
        error = ""
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            error = "Vul een datum in, zoals 2027-01-31."
        else:
            if day <= today:
                error = "Kies een datum na vandaag."
            elif day > today + timedelta(days=MAX_PAUSE_DAYS):
                error = "Kies een datum binnen een jaar."
        if error:
            return self.page(request, found, 400, errors={"tot": error}, pause_value=raw)
        # Issues go out again from the start of that day, the site's time.
        until = datetime.combine(day, time(0), self.app.config.site.tz)
        token = request.path_params["token"]
        changed = await self._run(lambda s: s.pause(token, until))
        if changed is None:
            return self.app.not_found()
        shown = dutch_date(until, self.app.config.site.tz)
        message = f"De nieuwsbrief is gepauzeerd. Vanaf {shown} ontvang je hem weer."
        return self.page(request, changed, message=message)

    async def _resume(
        self, request: Request, found: Subscriber, form: Any, now: datetime
    ) -> Response:
        token = request.path_params["token"]
        changed = await self._run(lambda s: s.pause(token, None))
        if changed is None:
            return self.app.not_found()
        return self.page(
            request, changed, message="De pauze is voorbij: je ontvangt de nieuwsbrief weer."
        )

    async def _unsubscribe(
        self, request: Request, found: Subscriber, form: Any, now: datetime
    ) -> Response:
        token = request.path_params["token"]
        changed = await self._run(lambda s: s.unsubscribe(token, now))
        if changed is None:
            return self.app.not_found()
        log.info("afgemeld (voorkeurenpagina)")
        return self.page(request, changed, message="Je bent afgemeld.")

    async def _address(
        self, request: Request, found: Subscriber, form: Any, now: datetime
    ) -> Response:
        email = str(form.get("email") or "").strip()
        try:
            normalise(email)
        except AddressError:
            error = (
                "Dit is geen geldig e-mailadres. Vul een adres in zoals naam@voorbeeld.nl."
                if email
                else "Vul je nieuwe e-mailadres in."
            )
            return self.page(request, found, 400, errors={"email": error}, email=email)
        client = request.client.host if request.client else "onbekend"
        allowed, retry = self.app.limiter.allow(client)
        if not allowed:
            return self.app.page(
                "notice.html",
                "Even geduld",
                429,
                headers={"Retry-After": str(retry)},
                paragraphs=[
                    "Er zijn vanaf dit adres te veel verzoeken verstuurd.",
                    f"Probeer het over {max(1, retry // 60)} minuten opnieuw.",
                ],
            )
        token = request.path_params["token"]
        changed, outcome = await self._run(lambda s: s.request_address(token, email, now))
        if changed is None:
            return self.app.not_found()
        if outcome is not None:
            address, change_token = outcome
            to, data, utf8 = self.app.mail(
                address,
                f"Bevestig je nieuwe adres voor de nieuwsbrief van {self.app.config.site.title}",
                "serve/address_mail.txt",
                "adreswijziging",
                confirm_url=self.app.public_url + "voorkeuren/adres/" + change_token,
            )
            try:
                await run_in_threadpool(sender.send_one, self.app.config, to, data, utf8)
            except Exception as exc:  # SMTP down, refused, ...: let the person retry later
                log.warning("bevestigingsmail adreswijziging niet verstuurd: %s", exc)
                await self._run(lambda s: s.withdraw_address(change_token))
                return self.page(
                    request,
                    changed,
                    503,
                    notice="We konden de e-mail met de bevestigingslink nu niet versturen. "
                    "Probeer het later opnieuw.",
                )
            log.info("adreswijziging gevraagd; bevestigingsmail verstuurd")
        return self.page(request, changed, message=ADDRESS_SENT)

    async def _download(self, token: str, now: datetime) -> Response:
        data = await self._run(lambda s: s.export(token))
        if data is None:
            return self.app.not_found()
        data["gedownload_op"] = now.isoformat(timespec="seconds")
        body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        return Response(
            body.encode("utf-8"),
            200,
            headers={
                **PRIVATE_HEADERS,
                "Content-Disposition": 'attachment; filename="mijn-gegevens-nieuwsbrief.json"',
            },
            media_type="application/json; charset=utf-8",
        )

    # confirming a new address --------------------------------------------------------------

    async def _pending(self, request: Request) -> tuple[Subscriber, str] | None:
        token, now = request.path_params["token"], self.app.clock()
        return await self._run(lambda s: s.pending_address(token, now))

    def _address_page(
        self, request: Request, found: Subscriber, email: str, status: int = 200, notice: str = ""
    ) -> Response:
        new = dataclasses.replace(found, email=email)
        return self.app.form_page(
            request,
            "address_confirm.html",
            "Bevestig je nieuwe e-mailadres",
            status,
            self.path,
            kind="preferences",
            masked=found.masked,
            new_masked=new.masked,
            action=self.path + "adres/" + request.path_params["token"],
            notice=notice,
        )

    async def address_form(self, request: Request) -> Response:
        # GET and HEAD: mail scanners fetch links, so only the button's POST confirms
        pending = await self._pending(request)
        if pending is None:
            return self.app.not_found()
        return self._address_page(request, *pending)

    async def address_confirm(self, request: Request) -> Response:
        pending = await self._pending(request)
        if pending is None:
            return self.app.not_found()
        form = await request.form(max_files=0, max_fields=10)
        if not self._csrf_ok(request, form):
            notice = "De pagina was verlopen. Klik nog een keer op de knop om te bevestigen."
            return self._address_page(request, *pending, 403, notice=notice)
        token, now = request.path_params["token"], self.app.clock()
        found, changed = await self._run(lambda s: s.confirm_address(token, now))
        if found is None:
            return self.app.not_found()
        if not changed:
            return self.app.page(
                "notice.html",
                "Adres niet gewijzigd",
                409,
                kind="preferences",
                paragraphs=[
                    "Dit adres kan niet voor de nieuwsbrief worden gebruikt. De nieuwsbrief "
                    "blijft naar je oude adres gaan.",
                ],
            )
        log.info("adreswijziging bevestigd")
        return self.app.page(
            "notice.html",
            "Je nieuwe e-mailadres is bevestigd",
            kind="preferences",
            paragraphs=[f"Je ontvangt de nieuwsbrief voortaan op {found.masked}."],
        )


_ACTIONS = {
    "onderwerpen": Preferences._tracks,
    "pauzeren": Preferences._pause,
    "hervatten": Preferences._resume,
    "afmelden": Preferences._unsubscribe,
    "adres": Preferences._address,
}
