"""The browser test layer (issue 8): real pages in headless Chromium, checked with axe-core.

One browser for the whole session; the sample project is built once into a temp folder
and served over HTTP on 127.0.0.1, so root-relative links (`/static/stijl.css`,
`/berichten/<id>/`) resolve as they do on the real site.

Which pages are checked is the list `TARGETS` below. To check a new page, add a
`Target` to it; the accessibility, screenshot and reflow tests pick it up. Pages that do
not exist yet are listed with `todo=` and are skipped with that reason.

Needs Debian's `chromium` (`/usr/bin/chromium`, or `$KRIMPPOST_CHROMIUM`) and axe-core
from npm (`npm ci --prefix tests/browser`); `bin/test` (the README's test command, which
`.ci/run` runs) installs both. Without them the layer is skipped in a bare `pytest` run, and
fails where it is required: under `bin/test` (`KRIMPPOST_REQUIRE_BROWSER=1`) and in CI
(`CI` set), so a broken setup cannot pass with the layer silently skipped.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHROMIUM = Path(os.environ.get("KRIMPPOST_CHROMIUM", "/usr/bin/chromium"))
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
NOW = datetime(2026, 11, 27, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))

# Without the background-networking flags Chromium tries to reach Google services, which
# fails (slowly) on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PHONE = 375
DESKTOP = 1280
WIDTHS = {"telefoon": PHONE, "desktop": DESKTOP}
VIEWPORT_HEIGHT = 800


@dataclass(frozen=True)
class Target:
    """A page to check.

    `path` is root-relative on the server `origin` ("site": the static site from
    `krimppost build`). `kind` instead of a path means "an item page of this kind", picked
    from the build. `status` is the HTTP status the page must come with. `todo` skips the
    page with that reason until it exists.
    """

    name: str  # test id and screenshot file name
    path: str = ""
    kind: str = ""
    origin: str = "site"
    status: int = 200
    todo: str = ""


# An item with what the sample content lacks and editors will write sooner or later: very
# long words and links, a wide table, a code block, footnotes, abbreviations, a quote,
# nested lists, an oversized raw <img>. Dated early, so it stays off the home page.
EDGE_CASES = """\
---
title: "Randgevallen: arbeidsmarktregioknooppuntenoverleg en gemeenschappelijkeregelingsbesturen"
date: 2026-01-05
kind: news
track: wrb
summary: Een proefbericht met lange samenstellingen, een brede tabel en codeblokken.
tags: [proef, toegankelijkheid, herschikken]
regions: [Noordoost-Groningen, Zeeuws-Vlaanderen]
image: /afbeeldingen/wrb-bevinding-voorzieningen-stippen.png
image_alt: Kaart met stippen voor voorzieningen in een krimpregio
attachments:
  - title: Samenvatting van het onderzoek (pdf)
    path: /woningmarkt/samenvatting-rigo-dsp-sloop-en-transformatie.pdf
  - title: https://www.example.nl/een/heel/lang/pad/zonder/spaties/naar/een/document.pdf
    url: https://www.example.nl/een/heel/lang/pad/zonder/spaties/naar/een/document.pdf
---
De WRB[^1] schreef over het
arbeidsmarktregioknooppuntenoverlegvergaderingsverslagenarchief. Zie
<https://www.example.nl/een/heel/lang/pad/zonder/spaties/naar/een/pagina/met/uitleg/over/krimp>
of mail naar langeadresvoorvragenoverbevolkingsdaling@ministerievanbinnenlandsezaken.nl.

## Kerncijfers per regio in een tabel met veel kolommen

| Regio | Inwoners 2020 | Inwoners 2030 | Inwoners 2040 | Huishoudens | Leegstand | Woningvoorraadontwikkeling |
|---|---|---|---|---|---|---|
| Noordoost-Groningen | 118.000 | 111.000 | 104.000 | 52.000 | 4,1% | afname |
| Zeeuws-Vlaanderen | 104.000 | 100.000 | 95.000 | 46.000 | 3,8% | gelijkblijvend |

```
krimppost build --root /een/heel/lang/pad/naar/het/project --now 2026-11-27T12:00:00+01:00 --debug
```

> Een citaat uit het essay van de Wetenschappelijke Reflectiegroep.

1. Een genummerde lijst
    - met een geneste lijst
    - en nog een punt

<img src="/bestanden/afbeeldingen/wrb-bevinding-voorzieningen-stippen.png" alt="Dezelfde kaart, groot" width="2400" height="1600">

[^1]: De Wetenschappelijke Reflectiegroep Bevolkingsdaling.

*[WRB]: Wetenschappelijke Reflectiegroep Bevolkingsdaling
"""
EDGE_CASES_PATH = "/berichten/proef-randgevallen/"

NOT_BUILT = "not built yet"

TARGETS: list[Target] = [
    Target("home", "/"),
    *[
        Target(f"bericht-{kind}", kind=kind)
        for kind in ("finding", "progress", "event", "podcast", "publication", "news")
    ],
    Target("traject", "/trajecten/woningmarkt/"),
    Target("archief", "/archief/"),
    Target("soort", "/soorten/evenementen/"),
    Target("nieuwsbrieven", "/nieuwsbrief/"),
    Target("agenda", "/agenda/"),
    Target("regios", "/regios/"),
    Target("regio", "/regios/parkstad-limburg/"),
    Target("onderwerpen", "/onderwerpen/"),
    Target("onderwerp", "/onderwerpen/woningmarkt/"),
    Target("zoeken", "/zoeken/?q=woonafspraken"),
    Target("niet-gevonden", "/bestaat-niet/", status=404),
    Target("toegankelijkheid", "/toegankelijkheid/"),
    Target("bericht-randgevallen", EDGE_CASES_PATH),
    Target("nieuwsbrief-nummer", "/nieuwsbrief/1/"),
    # The social review pages are static files in outbox/social/, served from outbox/:
    # the overview and the page of one month (the sample has items in November 2026).
    Target("social-beoordeling", "/social/index.html", origin="outbox"),
    Target("social-maand", "/social/maanden/2026-11.html", origin="outbox"),
    # Pages of the `krimppost serve` app ({token}: a real subscriber's unsubscribe token).
    Target("aanmelden", "/aanmelden", origin="serve"),
    Target("afmelden", "/afmelden/{token}", origin="serve"),
]


def target_params(targets: list[Target] = TARGETS) -> list[Any]:
    """`TARGETS` as pytest parameters; pages still to be built are skipped with the reason."""
    return [
        pytest.param(t, id=t.name, marks=[pytest.mark.skip(reason=t.todo)] if t.todo else [])
        for t in targets
    ]


# the marker and the skip rule ----------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: opens pages in headless Chromium (tests/browser; needs chromium)"
    )


def missing_tools() -> str:
    """Why the layer cannot run here, or "" when it can."""
    problems = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    if not AXE.is_file():
        problems.append(f"{AXE.relative_to(REPO)} is missing (npm ci --prefix tests/browser)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("playwright is not installed (pip install -e '.[test]')")
    return "; ".join(problems)


def required() -> bool:
    """Whether a missing browser is an error here rather than a reason to skip."""
    return any(
        os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
        for name in ("KRIMPPOST_REQUIRE_BROWSER", "CI")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_tools()
    if not missing or required():
        return  # where required, a missing browser fails in the `browser` fixture instead
    skip = pytest.mark.skip(reason=f"browser layer skipped: {missing}")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


# the site, the server and the browser ----------------------------------------------------


@dataclass(frozen=True)
class BuiltSite:
    root: Path  # outbox/site/
    item_paths: dict[str, str]  # kind -> root-relative path of the item page checked
    all_item_paths: list[str]


class _SiteHandler(SimpleHTTPRequestHandler):
    """Serves outbox/site/ like a static host: a missing path gets 404.html with status 404."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        page = Path(self.directory) / "404.html"
        if code != HTTPStatus.NOT_FOUND or not page.is_file():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="session")
def site_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A project folder, and an HTTP server on 127.0.0.1 for its outbox/site/.

    The server starts before the build so that the site can be built with its address
    as `base_url`: images and downloads are absolute URLs and must load from here.
    """
    root = tmp_path_factory.mktemp("browser") / "project"
    handler = functools.partial(_SiteHandler, directory=str(root / "outbox" / "site"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield root, f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def site(site_server: tuple[Path, str]) -> BuiltSite:
    """The repository's sample project plus `EDGE_CASES`, built into a temp copy at `NOW`."""
    from pipeline.commands.build import build

    root, base_url = site_server
    root.mkdir()
    config = (REPO / "config.toml").read_text(encoding="utf-8")
    config, found = re.subn(r"(?m)^base_url\s*=.*$", f'base_url = "{base_url}/"', config, count=1)
    assert found, "config.toml has no base_url"
    # Every sample item in the issue and with drafts, as in a project started this year.
    config = config.replace("[newsletter]\n", "[newsletter]\nsince = 2026-01-01\n", 1)
    config = config.replace("[social.x]\n", "[social]\nsince = 2026-01-01\n\n[social.x]\n", 1)
    # Four items per part of the search index: the search page merges several parts.
    config += "\n[search]\npart_size = 4\n"
    (root / "config.toml").write_text(config, encoding="utf-8")
    shutil.copytree(REPO / "content", root / "content")
    shutil.copytree(REPO / "templates", root / "templates")
    edge = root / "content" / "proef" / "randgevallen.md"
    edge.parent.mkdir()
    edge.write_text(EDGE_CASES, encoding="utf-8")
    report = build(root, NOW)
    assert not report.problems, [str(p) for p in report.problems]
    from pipeline.commands.approval import approve_issue
    from pipeline.commands.newsletter import compile_issue

    assert compile_issue(root, NOW).number == 1
    approve_issue(root, 1, "Redactie", NOW)  # the web version of issue 1 is public now
    entries = [e for e in report.publication.entries if "/" + e.path != EDGE_CASES_PATH]
    richest: dict[str, tuple[int, str]] = {}
    for entry in entries:  # per kind the item with the most features on one page
        item = entry.item
        score = sum(map(bool, (item.image, item.attachments, item.event, item.audio, item.tags)))
        if item.kind not in richest or score > richest[item.kind][0]:
            richest[item.kind] = (score, "/" + entry.path)
    return BuiltSite(
        root=root / "outbox" / "site",
        item_paths={kind: path for kind, (_, path) in richest.items()},
        all_item_paths=["/" + e.path for e in entries],
    )


@pytest.fixture(scope="session")
def serve_app(site: BuiltSite, site_server: tuple[Path, str]) -> Iterator[dict[str, str]]:
    """`krimppost serve` on a free loopback port, with one subscriber for the unsubscribe page."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = site_server[0]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "subscribers",
            "add",
            "lezer@example.nl",
            "--root",
            str(root),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    from storesql import scalar

    token = scalar(root, "SELECT token FROM subscribers")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--root", str(root), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/aanmelden", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield {"serve": base, "token": token}
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def origins(
    site: BuiltSite, site_server: tuple[Path, str], serve_app: dict[str, str]
) -> dict[str, str]:
    """Base URL (without the final /) of each server the targets live on."""
    root = site_server[0] / "outbox"
    handler = functools.partial(_SiteHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return {"site": site_server[1], "outbox": f"http://{host}:{port}", **serve_app}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole session."""
    missing = missing_tools()
    if missing:  # only reached where required: elsewhere the tests were skipped at collection
        pytest.fail(f"browser layer required but cannot run: {missing}", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """test-artifacts/screenshots/, emptied of the previous run's pictures."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


class Visitor:
    """Opens targets in the session's browser, one tab per viewport size.

    A tab per (width, device pixel ratio) is kept for the whole session and navigated from
    page to page: the site is static, and a new context per page would cost more than
    the checks. `problems` collects what a reader would notice as broken on the page
    opened last: script errors, and files of our own servers (stylesheet, images) that
    failed to load.
    """

    def __init__(self, browser: Browser, site: BuiltSite, origins: dict[str, str]) -> None:
        self.browser = browser
        self.site = site
        self.origins = origins
        self.problems: list[str] = []
        self._main_url = ""
        self._tabs: dict[tuple[int, float], Page] = {}

    def url(self, target: Target) -> str:
        if target.kind and target.kind not in self.site.item_paths:
            pytest.fail(f"the sample content has no published item of kind {target.kind!r}")
        path = self.site.item_paths[target.kind] if target.kind else target.path
        return self.origins[target.origin] + path.replace("{token}", self.origins.get("token", ""))

    def _tab(self, width: int, scale: float) -> Page:
        tab = self._tabs.get((width, scale))
        if tab is not None and not tab.is_closed():
            return tab
        context = self.browser.new_context(
            bypass_csp=True,  # the serve app's Content-Security-Policy would block axe's script
            viewport={"width": width, "height": VIEWPORT_HEIGHT},
            device_scale_factor=scale,
            locale="nl-NL",
            timezone_id="Europe/Amsterdam",
        )
        context.set_default_timeout(15_000)
        tab = context.new_page()
        own = tuple(self.origins.values())

        def failed(url: str, why: str) -> None:
            # A request the browser cancelled (the search page's worker script, still loading
            # when the test moves on) is not a file that failed to load.
            if "net::ERR_ABORTED" in why:
                return
            if url.startswith(own) and url != self._main_url:
                self.problems.append(f"{url}: {why}")

        tab.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        tab.on("requestfailed", lambda req: failed(req.url, str(req.failure)))
        tab.on("response", lambda res: res.status >= 400 and failed(res.url, f"HTTP {res.status}"))
        self._tabs[(width, scale)] = tab
        return tab

    def open(self, target: Target, width: int, scale: float = 1) -> Page:
        """`target` at `width` CSS pixels (`scale`: device pixel ratio), fully loaded."""
        page = self._tab(width, scale)
        self.problems.clear()
        self._main_url = self.url(target)
        response = page.goto(self._main_url, wait_until="load")
        assert response is not None, self._main_url
        assert response.status == target.status, f"{self._main_url}: HTTP {response.status}"
        page.evaluate("document.fonts.ready.then(() => true)")
        return page

    def close(self) -> None:
        for tab in self._tabs.values():
            tab.context.close()
        self._tabs.clear()


@pytest.fixture(scope="session")
def visitor(browser: Browser, site: BuiltSite, origins: dict[str, str]) -> Iterator[Visitor]:
    visitor = Visitor(browser, site, origins)
    try:
        yield visitor
    finally:
        visitor.close()


@pytest.fixture
def visit(visitor: Visitor) -> Visitor:
    """The session's visitor, for one test."""
    visitor.problems.clear()
    return visitor


# axe-core ---------------------------------------------------------------------------------

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Rules switched off, each with the reason why. Zero violations is the bar: a rule goes
# here only with a written reason, never to make a failure go away.
DISABLED_RULES: dict[str, str] = {}


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core's WCAG 2.1 A/AA rules on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    options = {
        "runOnly": {"type": "tag", "values": AXE_TAGS},
        "rules": {rule: {"enabled": False} for rule in DISABLED_RULES},
        "resultTypes": ["violations"],
    }
    result = page.evaluate("options => axe.run(document, options)", options)
    return result["violations"]


def describe(violations: list[dict[str, Any]]) -> str:
    """A readable failure message: rule, impact, help URL, and each failing element."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"][:10]:
            lines.append(f"    {' > '.join(map(str, node['target']))}: {node['html'][:200]}")
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"        {summary[:400]}")
        if len(v["nodes"]) > 10:
            lines.append(f"    … and {len(v['nodes']) - 10} more")
    return "\n".join(lines)
