"""The site's single pages: home, agenda, search, newsletter archive, 404, accessibility
statement, robots.txt and the sitemap; and the pointers left where a moved item was."""

from __future__ import annotations

import functools
from html import escape as _escape_html

from pipeline.content import taxonomy
from pipeline.render import search
from pipeline.render.calendar import past_events, upcoming_events
from pipeline.render.listings import Site, entry_key
from pipeline.render.output import Output, key_of

HOME_SIZE = 10
REDIRECT_VERSION = 1


def escape(text: str) -> str:
    """&, < and > for XML text (xml.sax.saxutils would import urllib and ssl: 15 ms a run)."""
    return _escape_html(text, quote=False)


def redirect_page(site_title: str, target: str) -> bytes:
    """Where an item page was before its file moved: a permanent pointer to the new page (a
    static host has no 301; search engines treat an instant refresh with a canonical link
    as one)."""
    url = _escape_html(target)
    title = _escape_html(site_title)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="nl">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Dit bericht is verhuisd | {title}</title>\n"
        f'<link rel="canonical" href="{url}">\n'
        f'<meta http-equiv="refresh" content="0; url={url}">\n'
        '<meta name="robots" content="noindex">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "</head>\n<body>\n<main>\n<h1>Dit bericht is verhuisd</h1>\n"
        f'<p>Het staat nu op <a href="{url}">{url}</a>.</p>\n'
        "</main>\n</body>\n</html>\n"
    ).encode()


def redirect_pages(site: Site) -> list[Output]:
    # Not in the sitemap: it lists canonical pages only.
    return [
        Output(
            f"site/{path}index.html",
            key_of("redirect", REDIRECT_VERSION, site.config.site.title, target),
            functools.partial(redirect_page, site.config.site.title, target),
            2,
        )
        for path, target in site.redirects
    ]


def newsletter_archive(site: Site) -> Output:
    """The page of newsletter issues (its feed is feeds.issues_output; `compile` refreshes
    both through outputs.newsletter_archive)."""
    return Output(
        "site/nieuwsbrief/index.html",
        key_of(site.fp, "issues", list(site.issues)),
        lambda: site.render(
            "site/newsletters.html",
            "nieuwsbrief/",
            issues=site.issues,
            page_title=f"Nieuwsbrief | {site.config.site.title}",
        ),
        2,
    )


def outputs(site: Site) -> list[Output]:
    latest = list(site.entries[:HOME_SIZE])
    events = upcoming_events(site.entries, site.now)
    home_key = key_of(site.fp, "home", [entry_key(e) for e in latest + events])
    past = past_events(site.entries, site.now)
    agenda_key = key_of(
        site.fp, "agenda", [entry_key(e) for e in events], [entry_key(e) for e in past]
    )
    searchable = [_search_page(site)] if site.config.search.enabled else []
    return [
        *searchable,
        newsletter_archive(site),
        Output(
            "site/agenda/index.html",
            agenda_key,
            lambda: site.render(
                "site/agenda.html",
                "agenda/",
                upcoming=events,
                past=past,
                page_title=f"Agenda | {site.config.site.title}",
                page_description=f"Komende en afgelopen evenementen van {site.config.site.title}.",
            ),
            2,
        ),
        Output(
            "site/index.html",
            home_key,
            lambda: site.render("site/home.html", "", entries=latest, events=events),
            2,
        ),
        Output(
            "site/404.html",
            key_of(site.fp, "404"),
            lambda: site.render(
                "site/404.html",
                "404.html",
                page_title=f"Pagina niet gevonden | {site.config.site.title}",
            ),
            2,
        ),
        Output(
            "site/toegankelijkheid/index.html",
            key_of(site.fp, "toegankelijkheid"),
            lambda: site.render(
                "site/accessibility.html",
                "toegankelijkheid/",
                accessibility=site.config.accessibility,
                page_title=f"Toegankelijkheidsverklaring | {site.config.site.title}",
            ),
            2,
        ),
        Output("site/robots.txt", key_of(site.fp, "robots"), functools.partial(_robots, site), 2),
        Output(
            "site/sitemap.xml",
            key_of(site.fp, "sitemap", [entry_key(e) for e in site.entries]),
            functools.partial(_sitemap, site),
            3,
        ),
    ]


def _search_page(site: Site) -> Output:
    bundles = [site.url(p) for p in search.bundle_paths(search.groups(site.config, site.entries))]
    return Output(
        "site/zoeken/index.html",
        key_of(site.fp, "zoeken", bundles),
        lambda: site.render(
            "site/search.html",
            "zoeken/",
            bundle_urls=bundles,
            page_title=f"Zoeken | {site.config.site.title}",
            page_description=f"Zoeken in alle berichten van {site.config.site.title}.",
        ),
        3,
    )


def _robots(site: Site) -> bytes:
    return f"User-agent: *\nAllow: /\n\nSitemap: {site.absolute('sitemap.xml')}\n".encode()


def _sitemap(site: Site) -> bytes:
    urls: list[tuple[str, str | None]] = [
        (site.absolute(""), None),
        (site.absolute("archief/"), None),
        (site.absolute("agenda/"), None),
    ]
    urls += [(site.absolute(t["path"]), None) for t in site.tracks]
    urls += [(site.absolute(k["path"]), None) for k in site.kinds]
    for field, (folder, _noun, _heading) in taxonomy.KINDS.items():
        urls.append((site.absolute(f"{folder}/"), None))
        urls += [(site.absolute(term.path), None) for term, _ in site.terms[field]]
    urls.append((site.absolute("nieuwsbrief/"), None))
    urls += [(e.url, e.updated.date().isoformat()) for e in site.entries]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]
    for loc, lastmod in urls:
        mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        lines.append(f"  <url><loc>{escape(loc)}</loc>{mod}</url>")
    lines.append("</urlset>")
    return ("\n".join(lines) + "\n").encode()
