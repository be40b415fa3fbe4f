"""Who a desk request comes from, and whether it may do what it asks.

- The session cookie holds a random id signed with the desk's secret (itsdangerous); the
  store knows only the id's hash (pipeline/desk/accounts.py). HttpOnly, SameSite=Strict,
  Secure when the request came over https.
- Every POST carries the session's CSRF token (a form field, or the `X-CSRF-Token` header
  for the counter), compared in constant time; a POST whose Origin is another site is
  refused before anything else. The sign-in form, which has no session yet, carries a
  token tied to a short-lived cookie of its own (double submit).
- `[desk] trusted_header` (a single sign-on in front) is believed only from the addresses in
  `[desk] trusted_proxies`, and only for a name that is an account.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

from pipeline.config import Config
from pipeline.desk.accounts import Accounts, Session

SESSION_COOKIE = "krimppost_desk"
LOGIN_COOKIE = "krimppost_desk_login"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Visitor:
    """A request's signed-in person, and whether the response must set the cookie (a
    session the single sign-on just made)."""

    session: Session
    new_cookie: bool = False


class Gate:
    def __init__(self, config: Config, accounts: Accounts, secret: bytes) -> None:
        self.accounts = accounts
        self.secret = secret
        self.signer = Signer(secret, salt="krimppost-desk-session")
        self.idle = config.desk.session_minutes * 60
        self.header = config.desk.trusted_header.lower()
        self.proxies = [ipaddress.ip_network(n) for n in config.desk.trusted_proxies]

    # sessions ----------------------------------------------------------------------------

    def visitor(self, request: Request) -> Visitor | None:
        """The live session of the request (blocking: call from a thread)."""
        session = None
        raw = request.cookies.get(SESSION_COOKIE, "")
        if raw:
            try:
                session_id = self.signer.unsign(raw).decode()
            except BadSignature:
                session_id = ""
            if session_id:
                session = self.accounts.session(session_id, self.idle)
        trusted = self.trusted_name(request)
        if trusted is None:
            return Visitor(session) if session else None
        if session is not None and session.user.name == trusted:
            return Visitor(session)
        made = self.accounts.trusted_session(trusted, client_of(request))
        return Visitor(made, new_cookie=True) if made else None

    def trusted_name(self, request: Request) -> str | None:
        if not self.header or not self.proxies or request.client is None:
            return None
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return None
        if not any(address in network for network in self.proxies):
            return None
        name = request.headers.get(self.header, "").strip()
        return name or None

    def set_session_cookie(self, response: Response, request: Request, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.signer.sign(session.id).decode(),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def clear_session_cookie(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    # CSRF --------------------------------------------------------------------------------

    @staticmethod
    def csrf_ok(session: Session, token: str) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf, token)

    def login_token(self, request: Request) -> tuple[str, str | None]:
        """(the sign-in form's token, a new cookie value to set or None)."""
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        fresh = None
        if len(cookie) != 22:
            cookie = fresh = secrets.token_urlsafe(16)
        return self._login_mac(cookie), fresh

    def login_token_ok(self, request: Request, token: str) -> bool:
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        return len(cookie) == 22 and hmac.compare_digest(self._login_mac(cookie), token)

    def _login_mac(self, cookie: str) -> str:
        return hmac.new(self.secret, b"login:" + cookie.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def set_login_cookie(response: Response, request: Request, value: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE,
            value,
            max_age=3600,
            path="/inloggen",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )


def client_of(request: Request) -> str:
    return request.client.host if request.client else "onbekend"


def safe_next(target: str) -> str:
    """A place to go after signing in: a path of this desk only (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
