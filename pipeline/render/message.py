"""The newsletter as an RFC 5322 message: headers, multipart/alternative, one-click unsubscribe.

`List-Unsubscribe` and `List-Unsubscribe-Post` are never folded: the stdlib folds long
values onto a continuation line (and may turn long tokens into encoded-words), which some
receivers misread. Everything else is folded and encoded as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from typing import Any

from pipeline.config import Config

_UNFOLDED = {"list-unsubscribe", "list-unsubscribe-post", "list-id"}


class MailPolicy(EmailPolicy):
    def fold(self, name: str, value: Any) -> str:
        text = str(value)
        if name.lower() in _UNFOLDED and text.isascii() and len(name) + len(text) + 2 <= 998:
            return f"{name}: {text}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        text = str(value)
        if name.lower() in _UNFOLDED and text.isascii() and len(name) + len(text) + 2 <= 998:
            return f"{name}: {text}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = MailPolicy(linesep="\r\n")


@dataclass(frozen=True)
class Envelope:
    to: str
    subject: str
    date: datetime
    message_id: str
    unsubscribe_https: str
    unsubscribe_mailto: str


def unsubscribe_base(config: Config) -> str:
    return config.newsletter.unsubscribe_url


def preferences_base(config: Config) -> str:
    """The preference page of `krimppost serve`; the subscriber's token comes after it."""
    return config.serve.public_url + "voorkeuren/"


def message_id(config: Config, *parts: object) -> str:
    local = ".".join(str(p) for p in parts)
    return f"<{local}@{config.newsletter.message_id_domain}>"


def build(config: Config, envelope: Envelope, text: str, html: str) -> EmailMessage:
    nl = config.newsletter
    msg = EmailMessage(policy=POLICY)
    msg["From"] = formataddr((nl.from_name, nl.from_address))
    if nl.reply_to:
        msg["Reply-To"] = nl.reply_to
    msg["To"] = envelope.to
    msg["Subject"] = envelope.subject
    msg["Date"] = format_datetime(envelope.date)
    msg["Message-ID"] = envelope.message_id
    msg["List-Id"] = f"{nl.from_name} <{nl.list_id}>"
    msg["List-Unsubscribe"] = (
        f"<{envelope.unsubscribe_https}>, <mailto:{envelope.unsubscribe_mailto}?subject=afmelden>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # only the top level carries it
    return msg
