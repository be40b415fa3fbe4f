"""Per-recipient messages, assembled from pre-encoded pieces.

Building an `EmailMessage` per recipient costs ~10 ms for a 60 kB issue; sending 300
messages a second leaves ~3 ms for everything. So, once per distinct track selection, a
`Template` folds the constant headers with `pipeline.render.message.POLICY` (exactly what
`message.build` writes) and quoted-printable-encodes the text and HTML bodies in chunks
split at `TOKEN_PLACEHOLDER`. Per recipient only `To`, `Date`, `Message-ID` and
`List-Unsubscribe` are formatted, and the body is joined as

    chunk + b"=\\r\\n" + token + b"=\\r\\n" + next_chunk

The soft line breaks decode to nothing, keep every line within 76 characters, and put the
token on a line of its own, so no chunk's encoding depends on the recipient. The result
parses to the same headers and the same decoded text and HTML as `message.build`
(tests/test_mime.py). A copy of the chunks is dot-stuffed for SMTP once, too: every chunk
starts at the beginning of a line.

Addresses that are not plain ASCII go through `message.build` instead (`slow`).
"""

from __future__ import annotations

import binascii
import re
import secrets
from datetime import datetime
from email.utils import format_datetime

from pipeline.config import Config
from pipeline.render.message import POLICY, Envelope, build, unsubscribe_base
from pipeline.render.newsletter import TOKEN_PLACEHOLDER

_VARYING = ("to", "date", "message-id", "list-unsubscribe")
_PLACEHOLDER = TOKEN_PLACEHOLDER.encode("ascii")
_DOT = re.compile(rb"(?m)^\.")
_SOFT = b"=\r\n"
UTF8_POLICY = POLICY.clone(utf8=True)


def canonical_body(text: str) -> bytes:
    """The body bytes `set_content` encodes: lines as bytes.splitlines() finds them, LF."""
    return b"\n".join(text.encode("utf-8").splitlines()) + b"\n"


def qp_encode(data: bytes) -> bytes:
    """Quoted-printable with CRLF line ends (lines of at most 76 characters)."""
    # LF-only input makes binascii use LF for hard and soft breaks alike; then CRLF them.
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    if _LONG.search(encoded):
        encoded = b"\n".join(_rewrap(line) for line in encoded.split(b"\n"))
    return encoded.replace(b"\n", b"\r\n")


_LONG = re.compile(rb"[^\n]{77}")


def _rewrap(line: bytes) -> bytes:
    """Soft-break a line over 76 characters without splitting an `=XX` escape.

    binascii.b2a_qp encodes whitespace at the end of a line as `=20` without counting it,
    which can make that line 77 or 78 characters long.
    """
    out = []
    while len(line) > 76:
        cut = 75
        if line[cut - 1 : cut] == b"=":
            cut -= 1
        elif line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        out.append(line[:cut] + b"=")
        line = line[cut:]
    out.append(line)
    return b"\n".join(out)


def dot_stuff(data: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2): a line starting with `.` gets another `.`."""
    return _DOT.sub(b"..", data)


def _chunks(text: str) -> list[bytes]:
    """The encoded pieces between the placeholders.

    A piece followed by a token gets `=` appended to its last line, so that line must
    stay within 75 characters: encode it with one extra character and drop that again
    (binascii may otherwise end a piece with a full 76-character line).
    """
    pieces = canonical_body(text).split(_PLACEHOLDER)
    encoded = [qp_encode(piece + b"x") for piece in pieces[:-1]]
    assert all(e.endswith(b"x") for e in encoded)
    return [e[:-1] for e in encoded] + [qp_encode(pieces[-1])]


class Template:
    """One issue for one track selection, ready to be stamped per recipient."""

    def __init__(self, config: Config, subject: str, text: str, html: str) -> None:
        self.config = config
        self.subject = subject
        self.text = text
        self.html = html
        self.base = unsubscribe_base(config)
        self.mailto = config.newsletter.unsubscribe_mailto
        self._unsubscribe_tail = f">, <mailto:{self.mailto}?subject=afmelden>\r\n".encode()
        boundary = f"==krimppost-{secrets.token_hex(12)}=="
        sample = build(
            config,
            Envelope(
                to="ontvanger@example.nl",
                subject=subject,
                date=datetime(2000, 1, 1).astimezone(),
                message_id="<voorbeeld@example.nl>",
                unsubscribe_https=self.base,
                unsubscribe_mailto=self.mailto,
            ),
            "",
            "",
        )
        sample.set_boundary(boundary)
        # Constant header blocks, interleaved with the four that vary per recipient.
        self._segments: list[bytes] = []
        self._order: list[str] = []
        block: list[bytes] = []
        for name, value in sample.items():
            if name.lower() in _VARYING:
                self._segments.append(b"".join(block))
                self._order.append(name.lower())
                block = []
            else:
                block.append(POLICY.fold_binary(name, value))
        self._segments.append(b"".join(block))
        text_part, html_part = sample.iter_parts()
        delimiter = f"--{boundary}\r\n".encode()

        def part_head(part: object) -> bytes:
            return b"".join(POLICY.fold_binary(n, v) for n, v in part.items()) + b"\r\n"  # type: ignore[attr-defined]

        self._text_head = b"\r\n" + delimiter + part_head(text_part)
        self._html_head = b"\r\n" + delimiter + part_head(html_part)
        self._end = f"\r\n--{boundary}--\r\n".encode()
        self._text = _chunks(text)
        self._html = _chunks(html)
        self._text_stuffed = [dot_stuff(c) for c in self._text]
        self._html_stuffed = [dot_stuff(c) for c in self._html]

    def unsubscribe_url(self, token: str) -> str:
        return self.base + token

    def assemble(
        self, to: str, token: str, message_id: str, date: str, stuffed: bool = False
    ) -> bytes:
        """The whole message for one ASCII recipient; `date` is an RFC 5322 date string.

        With `stuffed`, lines starting with `.` are doubled, ready for SMTP DATA.
        """
        tok = token.encode("ascii")
        varying = {
            "to": b"To: " + to.encode("ascii") + b"\r\n",
            "date": b"Date: " + date.encode("ascii") + b"\r\n",
            "message-id": b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
            "list-unsubscribe": b"List-Unsubscribe: <"
            + (self.base + token).encode("ascii")
            + self._unsubscribe_tail,
        }
        out = [self._segments[0]]
        for name, segment in zip(self._order, self._segments[1:], strict=True):
            out.append(varying[name])
            out.append(segment)
        joint = _SOFT + tok + _SOFT
        out.append(self._text_head)
        out.append(joint.join(self._text_stuffed if stuffed else self._text))
        out.append(self._html_head)
        out.append(joint.join(self._html_stuffed if stuffed else self._html))
        out.append(self._end)
        return b"".join(out)

    def envelope(self, to: str, token: str, message_id: str, date: datetime) -> Envelope:
        return Envelope(
            to=to,
            subject=self.subject,
            date=date,
            message_id=message_id,
            unsubscribe_https=self.base + token,
            unsubscribe_mailto=self.mailto,
        )

    def slow(self, to: str, token: str, message_id: str, date: datetime) -> bytes:
        """The stdlib path (`message.build`), for addresses that need SMTPUTF8."""
        msg = build(
            self.config,
            self.envelope(to, token, message_id, date),
            self.text.replace(TOKEN_PLACEHOLDER, token),
            self.html.replace(TOKEN_PLACEHOLDER, token),
        )
        return msg.as_bytes(policy=UTF8_POLICY)


def date_header(moment: datetime) -> str:
    return format_datetime(moment)
