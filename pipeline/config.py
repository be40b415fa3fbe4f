"""`config.toml`: declared, typed options; every problem reported with its line, all in one run.

Each option is declared once, as a field of the frozen dataclass of its section: the field's
annotation is its type, and `option()` gives its default, check, documentation and, where the
default names another option ("standaard de sitetitel"), its fallback. Validation never stops
at the first failure, so an operator sees every mistake at once. Fallbacks are filled in once,
after validation (as MkDocs' `post_validation` does), so the rest of the code reads one value
and never repeats `or config.site.title`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import ipaddress
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import ConfigError, Problem

CONFIG_NAME = "config.toml"
_REQUIRED = object()
TRACK_ID = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


class OptionError(ValueError):
    """A value does not fit its option; the message is shown to the operator."""


def _type_name(value: object) -> str:
    return {
        str: "tekst",
        int: "een geheel getal",
        float: "een getal",
        bool: "een boolean (true/false)",
        list: "een lijst",
        dict: "een tabel",
        date: "een datum",
        datetime: "een datum met tijd",
        time: "een tijd",
    }.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Option:
    """One declared option: its TOML type (from the field's annotation), default, check,
    documentation and fallback (a function of the sections declared before its own)."""

    kind: type = object
    default: Any = _REQUIRED
    check: Callable[[Any], Any] | None = None
    doc: str = ""
    fallback: Callable[[Any], Any] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def validate(self, value: Any) -> Any:
        # A TOML date, time or moment (`since = 2026-11-01`) is taken as its text; a check
        # (a date option's) then says what it wants.
        if self.kind is str and isinstance(value, date | time):
            value = value.isoformat()
        # bool is an int in Python, but `workers = true` is a mistake, not a number.
        if isinstance(value, bool) and self.kind is not bool:
            ok = False
        elif isinstance(value, int) and self.kind is float:
            ok = True
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise OptionError(f"moet {_type_name(self.kind())} zijn, niet {_type_name(value)}")
        for entry in value if isinstance(value, list) else [value]:
            _one_line(entry)
        checked = self.check(value) if self.check else value
        # `timeout = 30` is a float option written as an integer: read as the float it is.
        return float(checked) if self.kind is float else checked


def option(
    default: Any = _REQUIRED,
    check: Callable[[Any], Any] | None = None,
    *,
    doc: str,
    fallback: Callable[[Any], Any] | None = None,
) -> Any:
    """Declare the dataclass field below as an option. A fallback replaces an empty value once
    all options are valid; it receives the sections declared before this one (`c.site`) and
    its own section's values (`c.smtp.host`; those declared before it already resolved)."""
    return field(
        metadata={"option": Option(default=default, check=check, doc=doc, fallback=fallback)}
    )


def _toml_kind(hint: Any) -> type:
    if hint in (str, int, float, bool):
        return hint
    if typing.get_origin(hint) is tuple:
        return list  # a TOML array, made a tuple by its check
    raise TypeError(f"option of type {hint!r}: not a TOML type")


@functools.cache
def options_of(cls: type) -> dict[str, Option]:
    """The options a section dataclass declares, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: replace(f.metadata["option"], kind=_toml_kind(hints[f.name]))
        for f in fields(cls)
        if "option" in f.metadata
    }


# Config strings end up in mail headers, calendar lines and feed titles, where a line break
# or another control character breaks the output (or forges a header): none is accepted.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(value: object) -> None:
    if isinstance(value, str) and (m := _CONTROL.search(value)):
        raise OptionError(
            f"mag geen regeleinde of ander stuurteken bevatten (gevonden: U+{ord(m.group()):04X})"
        )


def _non_empty(value: str) -> str:
    if not value.strip():
        raise OptionError("mag niet leeg zijn")
    return value.strip()


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError(f"moet een http(s)-URL zijn, niet {value!r}")
    return value if value.endswith("/") else value + "/"


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise OptionError(
            f"onbekende tijdzone {value!r} (bijvoorbeeld 'Europe/Amsterdam')"
        ) from None
    return value


def _language(value: str) -> str:
    if value not in ("nl-NL", "nl"):
        raise OptionError(f"alleen Nederlands wordt ondersteund ('nl-NL'), niet {value!r}")
    return "nl-NL"


def _at_least(minimum: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < minimum:
            raise OptionError(f"moet minstens {minimum} zijn, niet {value}")
        return value

    return check


def _optional_date(value: str) -> str:
    """A calendar date, `2026-11-01` (a TOML date is read as this text)."""
    if not value:
        return value
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise OptionError(f"moet een datum zijn zoals 2026-11-01, niet '{value}'") from None


def _relative_path(value: str) -> str:
    if not value.strip():
        raise OptionError("mag niet leeg zijn")
    return value


def _string_list(value: list) -> tuple[str, ...]:
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise OptionError("moet een lijst met niet-lege teksten zijn")
    return tuple(v.strip() for v in value)


def _iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise OptionError(f"moet een datum zijn zoals 2026-11-27, niet {value!r}") from None
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise OptionError(f"moet een van {', '.join(choices)} zijn, niet {value!r}")
        return value

    return check


_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def _address(value: str) -> str:
    if value and not _ADDRESS.fullmatch(value):
        raise OptionError(f"moet een e-mailadres zijn, niet {value!r}")
    return value


def _subject_template(value: str) -> str:
    try:
        value.format(site="x", number=1, month="november", year=2026)
    except (KeyError, IndexError, ValueError) as exc:
        raise OptionError(
            f"onbekend veld {exc} (bruikbaar: {{site}}, {{number}}, {{month}}, {{year}})"
        ) from None
    return value


def _cron(value: str) -> str:
    if not value:
        return value
    fields_ = value.split()
    if len(fields_) != 5:
        raise OptionError(
            f"moet vijf cron-velden hebben (minuut uur dag maand weekdag), niet {value!r}"
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger(
            minute=fields_[0],
            hour=fields_[1],
            day=fields_[2],
            month=fields_[3],
            day_of_week=fields_[4],
        )
    except ValueError as exc:
        raise OptionError(f"ongeldige cron {value!r}: {exc}") from None
    return value


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise OptionError(f"moet een poortnummer (1-65535) zijn, niet {value}")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise OptionError(f"mag niet negatief zijn, niet {value}")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise OptionError(f"moet groter dan 0 zijn, niet {value}")
    return value


def _env_name(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise OptionError(
            f"moet de naam van een omgevingsvariabele zijn (bijv. SMTP_WACHTWOORD), niet {value!r}"
        )
    return value


def _optional_http_url(value: str) -> str:
    return _http_url(value) if value else value


# The sections. Field order is the order of a dataclass's arguments (positional construction
# stays valid), and the order of Config's fields is the order fallbacks are resolved in: a
# fallback may name only sections above its own.


@dataclass(frozen=True)
class Site:
    title: str = option(check=_non_empty, doc="Naam van de site en de feeds.")
    description: str = option(check=_non_empty, doc="Korte beschrijving (feeds, meta).")
    base_url: str = option(check=_http_url, doc="Publieke adres van outbox/site/.")
    language: str = option("nl-NL", _language, doc="Taal van alle lezersteksten.")
    timezone: str = option("Europe/Amsterdam", _timezone, doc="Tijdzone voor data.")
    organisation: str = option(check=_non_empty, doc="Afzender en uitgever.")
    email: str = option("", doc="Contactadres van de redactie (optioneel).")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def host(self) -> str:
        """The host of base_url: tag URIs, Message-IDs and the List-Id are named after it."""
        return urlsplit(self.base_url).hostname or "localhost"


@dataclass(frozen=True)
class Track:
    id: str  # the name of its table, [tracks.<id>]
    label: str = option(check=_non_empty, doc="Nederlandse naam van het traject.")
    description: str = option(check=_non_empty, doc="Korte Nederlandse beschrijving.")


@dataclass(frozen=True)
class Feeds:
    length: int = option(50, _at_least(1), doc="Aantal items per feed.")


@dataclass(frozen=True)
class Podcast:
    title: str = option(
        "", doc="Naam van de podcast; standaard de sitetitel.", fallback=lambda c: c.site.title
    )
    description: str = option(
        "",
        doc="Beschrijving; standaard die van de site.",
        fallback=lambda c: c.site.description,
    )
    image: str = option(
        "", doc="Hoesafbeelding (pad onder content/ of URL), 1400-3000 px vierkant."
    )
    category: str = option("Government", _non_empty, doc="Apple Podcasts-categorie.")
    explicit: bool = option(False, doc="Expliciete inhoud.")
    author: str = option(
        "", doc="Maker; standaard de organisatie.", fallback=lambda c: c.site.organisation
    )
    email: str = option(
        "",
        doc="Contactadres van de eigenaar; standaard site.email.",
        fallback=lambda c: c.site.email,
    )


@dataclass(frozen=True)
class Search:
    enabled: bool = option(True, doc="Zoekpagina /zoeken/ met een zoekindex van alle berichten.")
    part_size: int = option(
        250,
        _at_least(1),
        doc="Berichten per deel van de zoekindex (een wijziging maakt één deel opnieuw).",
    )


@dataclass(frozen=True)
class Images:
    variants: bool = option(
        True,
        doc="Verkleinde versies van elke afbeelding (srcset) en een Open Graph-beeld per bericht.",
    )


@dataclass(frozen=True)
class Newsletter:
    subject: str = option(
        "Nieuwsbrief {site} #{number} – {month} {year}",
        _subject_template,
        doc="Onderwerpregel; velden {site}, {number}, {month}, {year}.",
    )
    from_name: str = option(
        "", doc="Naam van de afzender; standaard de sitetitel.", fallback=lambda c: c.site.title
    )
    from_address: str = option("", _address, doc="Afzenderadres (nodig voor de nieuwsbrief).")
    reply_to: str = option(
        "", doc="Reply-To; standaard site.email.", fallback=lambda c: c.site.email
    )
    list_address: str = option("", _address, doc="To-adres van message.eml (de lijst).")
    list_id: str = option(
        "",
        doc="List-Id; standaard nieuwsbrief.<host van base_url>.",
        fallback=lambda c: f"nieuwsbrief.{c.site.host}",
    )
    message_id_domain: str = option(
        "",
        doc="Domein van Message-ID's; standaard dat van base_url.",
        fallback=lambda c: c.site.host,
    )
    unsubscribe_url: str = option(
        "",
        _optional_http_url,
        doc="Basis van de afmeldlink; standaard <base_url>afmelden/. Het token komt erachter.",
        fallback=lambda c: c.site.base_url + "afmelden/",
    )
    unsubscribe_mailto: str = option("", _address, doc="Adres voor afmelden per e-mail.")
    sender_address: str = option("", doc="Postadres van de afzender in de voettekst.")
    intro: str = option(
        "nieuwsbrief/voorwoord.md", _relative_path, doc="Voorwoord voor het volgende nummer."
    )
    size_budget: int = option(
        102_000,
        _at_least(10_000),
        doc="Maximale grootte HTML-deel (bytes); een groter nummer wordt niet gemaakt.",
    )
    lookback_days: int = option(
        30,
        _at_least(0),
        doc="Berichten van zoveel dagen vóór de eerste build komen nog in een nummer.",
    )
    since: str = option(
        "", _optional_date, doc="Of: alleen berichten vanaf deze datum (bv. 2026-11-01)."
    )
    max_items: int = option(20, _at_least(1), doc="Maximaal aantal berichten per nummer.")
    approval: bool = option(True, doc="Een nummer gaat pas weg na `newsletter approve`.")
    send_on_approval: bool = option(
        False, doc="Een goedgekeurd nummer meteen versturen, niet pas bij het volgende tijdstip."
    )


@dataclass(frozen=True)
class SocialHorizon:
    """The options of [social] itself, for every platform (its tables are the platforms)."""

    lookback_days: int = option(
        14,
        _at_least(0),
        doc="Berichten van zoveel dagen vóór de eerste build krijgen nog concepten.",
    )
    since: str = option(
        "", _optional_date, doc="Of: alleen concepten voor berichten vanaf deze datum."
    )


# Per platform: the limit and how a link counts (0 = every character of the URL counts), as
# each platform does; options not named here take their declared default.
SOCIAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "x": {"limit": 280, "url_weight": 23},
    "linkedin": {"limit": 3000, "url_weight": 0},
    "mastodon": {"limit": 500, "url_weight": 23},
    "bluesky": {"limit": 300, "url_weight": 0},
    "threads": {"enabled": False, "limit": 500, "url_weight": 0},
}


@dataclass(frozen=True)
class SocialPlatform:
    id: str  # the name of its table, [social.<id>]
    enabled: bool = option(True, doc="Concepten maken voor dit platform.")
    limit: int = option(500, _at_least(1), doc="Maximale lengte zoals het platform telt.")
    url_weight: int = option(0, _at_least(0), doc="Lengte van een link; 0 = volledig.")
    hashtags: tuple[str, ...] = option(
        (), _string_list, doc="Vaste hashtags (zonder #) voor elk bericht."
    )
    utm_source: str = option("", doc="utm_source van links naar de site; standaard de platform-id.")
    utm_medium: str = option("social", doc="utm_medium van links naar de site.")
    utm_campaign: str = option("bevolkingsdaling", doc="utm_campaign van links naar de site.")
    instance: str = option("", doc="Mastodon: adres van de eigen server (informatief).")


@dataclass(frozen=True)
class Schedule:
    build_interval: int = option(900, _at_least(1), doc="Seconden tussen vaste builds.")
    debounce: float = option(2.0, _at_least(0), doc="Wachttijd na een wijziging.")
    newsletter: str = option("", _cron, doc="Cron voor de nieuwsbrief, bv. '0 10 1-7 * tue'.")
    auto_send: bool = option(False, doc="Na samenstellen meteen versturen.")
    misfire_grace_time: int = option(
        300, _at_least(1), doc="Seconden dat een gemiste taak nog mag lopen."
    )
    newsletter_grace_time: int = option(21600, _at_least(1), doc="Idem voor de nieuwsbrief.")
    log_file: str = option("", doc="Logbestand (roteert); leeg = alleen stderr.")


@dataclass(frozen=True)
class Accessibility:
    status: str = option(
        "gedeeltelijk",
        _one_of("volledig", "gedeeltelijk", "niet"),
        doc="Nalevingsstatus WCAG 2.1 AA.",
    )
    statement_date: str = option("2026-11-27", _iso_date, doc="Datum van de verklaring.")
    evaluation: str = option(
        "Automatische toetsing met axe-core (WCAG 2.1 A en AA) in Chromium bij elke wijziging.",
        doc="Hoe de toegankelijkheid is onderzocht.",
    )
    limitations: tuple[str, ...] = option((), _string_list, doc="Bekende beperkingen.")
    contact_email: str = option(
        "", doc="Adres voor meldingen; standaard site.email.", fallback=lambda c: c.site.email
    )


@dataclass(frozen=True)
class Build:
    workers: int = option(0, _at_least(0), doc="Processen voor Markdown; 0 = alle kernen.")
    item_timeout: float = option(
        10.0, _positive, doc="Seconden per item voor Markdown dat verdacht traag is."
    )
    cache: str = option(
        ".krimppost/cache.sqlite", _relative_path, doc="Cache van gerenderde teksten."
    )


def _state_url(value: str) -> str:
    """A PostgreSQL URL without a password: that comes from the environment (the address
    in KRIMPPOST_STATE_URL, PGPASSWORD or ~/.pgpass), never from this file."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgresql+psycopg", "postgres"):
        raise OptionError(
            f"moet een PostgreSQL-URL zijn zoals postgresql://krimppost@db.example.nl/krimppost, niet {value!r}"
        )
    if parts.password is not None:
        raise OptionError(
            "bevat een wachtwoord; zet dat niet in config.toml maar in de omgeving "
            "(PGPASSWORD, ~/.pgpass of de hele URL in KRIMPPOST_STATE_URL)"
        )
    return value


@dataclass(frozen=True)
class State:
    path: str = option(
        ".krimppost/state.sqlite",
        _relative_path,
        doc="De state store (SQLite); daarnaast de lock-bestanden en caches.",
    )
    url: str = option(
        "",
        _state_url,
        doc="PostgreSQL in plaats van SQLite (postgresql://GEBRUIKER@HOST/DATABASE); "
        "KRIMPPOST_STATE_URL gaat voor.",
    )


def _relay_list(value: list) -> tuple[str, ...]:
    relays = _string_list(value)
    for relay in relays:
        host, _, port = relay.rpartition(":") if ":" in relay else (relay, "", "")
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise OptionError(f'moet "HOST" of "HOST:POORT" zijn, niet {relay!r}')
    return relays


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _security(value: str) -> str:
    if value and value not in ("none", "starttls", "tls"):
        raise OptionError(f"moet een van none, starttls, tls zijn, niet {value!r}")
    return value


@dataclass(frozen=True)
class Smtp:
    host: str = option("localhost", _non_empty, doc="SMTP-server voor de nieuwsbrief.")
    port: int = option(25, _port, doc="Poort van de SMTP-server.")
    hosts: tuple[str, ...] = option(
        (),
        _relay_list,
        doc='Meer SMTP-servers, om de beurt gebruikt ("HOST" of "HOST:POORT"); '
        "leeg = alleen host en port.",
    )
    relay_pause: float = option(
        60.0, _positive, doc="Seconden dat een server die verbindingen weigert wordt overgeslagen."
    )
    security: str = option(
        "",
        _security,
        doc="Versleuteling: none, starttls of tls; standaard starttls, none naar deze machine zelf.",
        fallback=lambda c: "none" if is_loopback(c.smtp.host) else "starttls",
    )
    ca_file: str = option(
        "", doc="Eigen CA-certificaten (PEM) voor de SMTP-server; leeg = die van het systeem."
    )
    username: str = option("", doc="Gebruikersnaam; leeg = niet inloggen.")
    password_env: str = option(
        "", _env_name, doc="Naam van de omgevingsvariabele met het wachtwoord."
    )
    envelope_from: str = option(
        "",
        _address,
        doc="Afzender in de envelop (bounces); standaard from_address.",
        fallback=lambda c: c.newsletter.from_address,
    )
    rate_per_second: float = option(
        0.0, _non_negative, doc="Maximaal aantal berichten per seconde; 0 = geen."
    )
    max_per_connection: int = option(
        100, _at_least(1), doc="Berichten per verbinding; daarna een nieuwe."
    )
    connections: int = option(1, _at_least(1), doc="Gelijktijdige verbindingen.")
    lease_seconds: float = option(
        60.0,
        _positive,
        doc="Na zoveel seconden zonder levensteken gaan de ontvangers van een gestopte "
        "verzending naar de andere verzenders.",
    )
    timeout: float = option(30.0, _positive, doc="Time-out per SMTP-stap (seconden).")
    retries: int = option(3, _at_least(0), doc="Nieuwe pogingen na een tijdelijke fout (4xx).")
    retry_delay: float = option(
        5.0, _non_negative, doc="Wachttijd voor de eerste nieuwe poging (s)."
    )
    dkim_selector: str = option("", doc="DKIM-selector; leeg = niet ondertekenen.")
    dkim_domain: str = option("", doc="DKIM-domein (d=).")
    dkim_key_path: str = option("", doc="Pad naar de private DKIM-sleutel (PEM).")


@dataclass(frozen=True)
class Subscribers:
    consent_version: str = option(
        "1", _non_empty, doc="Versie van de toestemmingstekst die abonnees zien."
    )
    confirm_days: int = option(7, _at_least(1), doc="Geldigheid van een bevestigingslink (dagen).")


def _return_path(value: str) -> str:
    if value and (value.count("{id}") != 1 or not _ADDRESS.fullmatch(value.replace("{id}", "x"))):
        raise OptionError(
            f"moet een e-mailadres met één keer {{id}} erin zijn "
            f"(bijv. bounce+{{id}}@bevolkingsdaling.nl), niet {value!r}"
        )
    return value


def _mailbox(value: str) -> str:
    if value and not (
        (value.startswith("maildir:") and len(value) > len("maildir:"))
        or re.fullmatch(r"imaps://[^/\s]+@[^@/:\s]+(:\d{1,5})?(/[^\s]*)?", value)
    ):
        raise OptionError(
            "moet maildir:PAD of imaps://GEBRUIKER@HOST[:POORT]/MAP zijn, niet " + repr(value)
        )
    return value


@dataclass(frozen=True)
class Bounces:
    return_path: str = option(
        "",
        _return_path,
        doc="Envelopafzender per bericht, {id} wordt per levering ingevuld "
        "(bijv. bounce+{id}@bevolkingsdaling.nl); leeg = smtp.envelope_from.",
    )
    mailbox: str = option(
        "",
        _mailbox,
        doc="Postbus met bounces, klachten en afmeldingen: maildir:PAD of "
        "imaps://GEBRUIKER@HOST[:POORT]/MAP (wachtwoord in KRIMPPOST_BOUNCE_PASSWORD).",
    )
    ca_file: str = option(
        "", doc="Eigen CA-certificaten (PEM) voor de IMAP-server; leeg = die van het systeem."
    )
    soft_limit: int = option(
        3,
        _at_least(1),
        doc="Zachte bounces (4.x.x) binnen soft_days waarna een adres onbestelbaar is.",
    )
    soft_days: int = option(30, _at_least(1), doc="Venster voor soft_limit (dagen).")
    interval: int = option(
        900, _at_least(10), doc="Seconden tussen twee keer ophalen in krimppost run."
    )


@dataclass(frozen=True)
class Serve:
    public_url: str = option(
        "",
        _optional_http_url,
        doc="Publieke adres van de web-app; standaard base_url.",
        fallback=lambda c: c.site.base_url,
    )
    secret_env: str = option(
        "", _env_name, doc="Omgevingsvariabele met het geheim voor CSRF-tokens."
    )
    subscribe_limit: int = option(5, _at_least(1), doc="Aanmeldingen per client per venster.")
    subscribe_window: int = option(
        600, _at_least(1), doc="Venster voor subscribe_limit (seconden)."
    )


def _header_name(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise OptionError(
            f"moet de naam van een HTTP-header zijn (bijv. X-Remote-User), niet {value!r}"
        )
    return value


def _networks(value: list) -> tuple[str, ...]:
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/24`, `::1`)."""
    result = []
    for v in _string_list(value):
        try:
            result.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError:
            raise OptionError(f"{v!r} is geen IP-adres of netwerk (bijv. 10.0.0.0/24)") from None
    return tuple(result)


@dataclass(frozen=True)
class Desk:
    session_minutes: int = option(
        60, _at_least(1), doc="Minuten zonder verzoek waarna een sessie van de desk verloopt."
    )
    trusted_header: str = option(
        "",
        _header_name,
        doc="Header met de gebruikersnaam van een single sign-on ervoor (bijv. X-Remote-User).",
    )
    trusted_proxies: tuple[str, ...] = option(
        (), _networks, doc="Adressen van wie trusted_header geloofd wordt."
    )
    secret_env: str = option(
        "", _env_name, doc="Omgevingsvariabele met het geheim waarmee de desk cookies tekent."
    )


@dataclass(frozen=True)
class Config:
    root: Path
    site: Site
    tracks: Mapping[str, Track]
    feeds: Feeds
    podcast: Podcast
    search: Search
    images: Images
    newsletter: Newsletter
    social: Mapping[str, SocialPlatform]
    social_horizon: SocialHorizon
    schedule: Schedule
    accessibility: Accessibility
    build: Build
    state: State
    smtp: Smtp
    subscribers: Subscribers
    bounces: Bounces
    serve: Serve
    desk: Desk
    fingerprint: str = field(default="")
    # Where each table and key was written, so a problem found after loading (a missing
    # file, a missing newsletter option) still points at its line.
    lines: Mapping[tuple[str, ...], int] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    @property
    def content_dir(self) -> Path:
        return self.root / "content"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    def moment(self, now: datetime) -> datetime:
        """A moment without an offset (`--now 2026-11-27T10:00`) is in the site time zone."""
        return now if now.tzinfo else now.replace(tzinfo=self.site.tz)

    def path(self, relative: str) -> Path:
        """A configured path, relative to the project root unless absolute."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def compiled_templates(self) -> Path:
        """Where the newsletter keeps its compiled templates, beside the state store."""
        return self.path(self.state.path).parent / "sjablonen"

    def line(self, *path: str) -> int | None:
        """The line of an option in config.toml (`line("podcast", "image")`), else of its
        table; None when neither is written there."""
        return _nearest(self.lines, path)


# The sections with one table each, in Config's order (tracks and social hold one table per
# track or platform and are read on their own).
SECTION_TYPES: dict[str, type] = {
    name: t
    for name, t in typing.get_type_hints(Config).items()
    if isinstance(t, type) and is_dataclass(t) and t is not SocialHorizon
}
# The keys of [social] that are not a platform's table.
SOCIAL_HORIZON_OPTIONS: dict[str, Option] = options_of(SocialHorizon)
SECTIONS: dict[str, dict[str, Option]] = {name: options_of(t) for name, t in SECTION_TYPES.items()}
TRACK_OPTIONS: dict[str, Option] = options_of(Track)


def social_options(platform: str) -> dict[str, Option]:
    """The options of [social.<platform>], with that platform's defaults."""
    defaults = {"utm_source": platform, **SOCIAL_DEFAULTS[platform]}
    return {
        name: replace(opt, default=defaults[name]) if name in defaults else opt
        for name, opt in options_of(SocialPlatform).items()
    }


def _nearest(lines: Mapping[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


class _LineIndex:
    """Where each table and key of a TOML document starts (tomllib does not say)."""

    _TABLE = re.compile(r"^\s*\[\[?\s*(.+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(
        r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
    )

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            if m := self._TABLE.match(line):
                table = self._split(m.group(1))
                self.lines.setdefault(table, number)
            elif m := self._KEY.match(line):
                self.lines.setdefault(table + self._split(m.group(1)), number)

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", dotted)
        return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)

    def line(self, *path: str) -> int:
        return _nearest(self.lines, path) or 1


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; bedoelde je '{close[0]}'?" if close else f" (bekend: {', '.join(sorted(known))})"


class _Validator:
    def __init__(self, index: _LineIndex, display: str) -> None:
        self.index = index
        self.display = display
        self.problems: list[Problem] = []

    def error(self, path: tuple[str, ...], message: str) -> None:
        self.problems.append(Problem(self.display, self.index.line(*path), message))

    def section(
        self, path: tuple[str, ...], raw: Any, options: dict[str, Option]
    ) -> dict[str, Any]:
        """The valid values of one table, defaults included; a problem for each other key."""
        label = "[" + ".".join(path) + "]"
        if not isinstance(raw, dict):
            self.error(path, f"{label} moet een tabel zijn, niet {_type_name(raw)}")
            raw = {}
        values: dict[str, Any] = {}
        for key in raw:
            if key not in options:
                self.error(
                    (*path, key),
                    f"onbekende optie '{key}' in {label}{_suggest(key, list(options))}",
                )
        for key, option in options.items():
            if key not in raw:
                if option.required:
                    self.error(path, f"verplichte optie '{key}' ontbreekt in {label}")
                else:
                    values[key] = option.default
                continue
            try:
                values[key] = option.validate(raw[key])
            except OptionError as exc:
                self.error((*path, key), f"'{key}' in {label} {exc}")
        return values


def _resolve(values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sections, each option left empty given its fallback (post-validation): once, here."""
    built: dict[str, Any] = {}
    for name, cls in SECTION_TYPES.items():
        section = values[name]
        for key, opt in options_of(cls).items():
            if opt.fallback is not None and not section[key]:
                # the sections before this one, and this one's options declared before it
                here = {name: SimpleNamespace(**section)}
                section[key] = opt.fallback(SimpleNamespace(**built, **here))
        built[name] = cls(**section)
    return built


def parse_config(text: str, root: Path, display: str = CONFIG_NAME) -> Config:
    """Validate the text of a config file; raises ConfigError listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else 1
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError([Problem(display, line, f"ongeldige TOML: {message}")]) from None

    index = _LineIndex(text)
    v = _Validator(index, display)
    known = [*SECTIONS, "tracks", "social"]
    for name in raw:
        if name not in known:
            v.error((name,), f"onbekende sectie [{name}]{_suggest(name, known)}")
    values = {name: v.section((name,), raw.get(name, {}), opts) for name, opts in SECTIONS.items()}

    tracks: dict[str, Track] = {}
    raw_tracks = raw.get("tracks", {})
    if not isinstance(raw_tracks, dict) or not raw_tracks:
        v.error(("tracks",), "er moet minstens één traject zijn, bijvoorbeeld [tracks.wrb]")
        raw_tracks = {}
    for track_id, body in raw_tracks.items():
        if not TRACK_ID.match(track_id):
            v.error(
                ("tracks", track_id),
                f"ongeldige traject-id '{track_id}': kleine letters, cijfers en '-'",
            )
        t = v.section(("tracks", track_id), body, TRACK_OPTIONS)
        if len(t) == len(TRACK_OPTIONS):
            tracks[track_id] = Track(id=track_id, **t)

    social: dict[str, SocialPlatform] = {}
    raw_social = raw.get("social", {})
    if not isinstance(raw_social, dict):
        v.error(("social",), "[social] moet tabellen per platform bevatten, zoals [social.x]")
        raw_social = {}
    general = {k: val for k, val in raw_social.items() if not isinstance(val, dict)}
    social_horizon = v.section(("social",), general, SOCIAL_HORIZON_OPTIONS)
    for name in raw_social:
        if name in general:
            continue
        if name not in SOCIAL_DEFAULTS:
            v.error(
                ("social", name),
                f"onbekend platform [social.{name}]{_suggest(name, list(SOCIAL_DEFAULTS))}",
            )
    for name in SOCIAL_DEFAULTS:
        options = social_options(name)
        values_ = v.section(("social", name), raw_social.get(name, {}), options)
        if len(values_) == len(options):
            social[name] = SocialPlatform(id=name, **values_)

    if v.problems:
        raise ConfigError(v.problems)
    return Config(
        root=root,
        tracks=MappingProxyType(tracks),
        social=MappingProxyType(social),
        social_horizon=SocialHorizon(**social_horizon),
        **_resolve(values),
        fingerprint=hashlib.sha256(text.encode()).hexdigest()[:16],
        lines=MappingProxyType(index.lines),
    )


def load_config(root: Path) -> Config:
    """Read `config.toml` under root."""
    path = root / CONFIG_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [
                Problem(
                    str(path), None, "geen config.toml gevonden; gebruik --root of `krimppost init`"
                )
            ]
        ) from None
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, f"kan niet lezen: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([Problem(CONFIG_NAME, line, "geen geldige UTF-8")]) from None
    return parse_config(text.replace("\r\n", "\n"), root.resolve())


def file_problems(config: Config) -> list[Problem]:
    """Files the config refers to that are missing: reported, not fatal (the rest still builds)."""
    image = config.podcast.image
    if image and "://" not in image and not (config.content_dir / image.lstrip("/")).is_file():
        return [
            Problem(
                CONFIG_NAME,
                config.line("podcast", "image"),
                f"[podcast] image: bestand '{image}' niet gevonden in content/",
            )
        ]
    return []


def newsletter_problems(config: Config) -> list[Problem]:
    """Options that a newsletter needs but a site-only project may leave out."""
    nl = config.newsletter
    missing = [
        name
        for name in ("from_address", "list_address", "unsubscribe_mailto")
        if not getattr(nl, name)
    ]
    return [
        Problem(
            CONFIG_NAME,
            config.line("newsletter", name),
            f"[newsletter] {name} ontbreekt; nodig om een nieuwsbrief te maken",
        )
        for name in missing
    ]
