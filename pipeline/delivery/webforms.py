"""What the web app's pages share: the CSRF double-submit cookie, the headers of private
pages, the same-site check (for pipeline/delivery/webapp.py and preferences.py)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "krimppost_csrf"
PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def csrf_cookie(request: Request) -> tuple[str, bool]:
    """The double-submit cookie the request carries, or a new one: (cookie, new)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if len(cookie) == 22:
        return cookie, False
    return secrets.token_urlsafe(16), True


def set_csrf_cookie(response: Response, request: Request, cookie: str, path: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        cookie,
        max_age=7200,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def cross_site(request: Request) -> bool:
    """A browser's POST from another site (the Origin header names it); the desk's too."""
    origin = request.headers.get("origin")
    return bool(origin) and origin != "null" and urlsplit(origin or "").netloc != request.url.netloc
