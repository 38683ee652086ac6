"""The app backend's health URLs (--throttle-url), checked before anything is read.

Only http and https, with a valid host and port, and no #fragment (a `#` in a password
must be written %23, or the rest of the URL becomes the fragment). Credentials in the
URL (`https://user:password@host/health`) are sent as HTTP basic auth, as curl does, and
never leave the URL's origin: a redirect is followed only within it (scheme, host, port),
and only for a probe (a GET); a webhook's POST is never redirected. A
refusal is one line that never repeats the URL: a bad URL may hold a secret in any of
its parts. A good URL is shown and recorded as scheme, host, port and path only: its
query string and credentials may hold a token.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backfill.errors import ConfigurationError

MAX_ANSWER_BYTES = 64 * 1024  # of an answer's body: read, so that the whole answer counts

_HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+")


@dataclass(frozen=True)
class HealthUrl:
    url: str  # what is requested: the URL without its credentials
    shown: str  # what is logged, recorded and printed: scheme://host[:port]/path
    authorization: str | None = None  # the Authorization header, from the credentials
    has_secret: bool = False  # credentials or a query string: not shown anywhere


def shown_url(url: str) -> str:
    """A checked URL as logged: without its query string or credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _ordinal(position: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(position, f"{position}th")


def parse_health_url(text: str, position: int = 1,
                     option: str = "--throttle-url (or BACKFILL_THROTTLE_URL)",
                     purpose: str = "health URL this tool can probe") -> HealthUrl:
    """`text` checked as a URL the tool calls (a health URL, unless said); a refusal,
    ConfigurationError (exit 2), names the problem and the URL's position among the
    option's values, never the URL."""

    def refuse(problem: str) -> ConfigurationError:
        return ConfigurationError(
            f"the {_ordinal(position)} {option} is not a {purpose}: {problem} (the URL is "
            "not shown: it may hold a secret)")

    if not text.strip():
        raise refuse("it is empty")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise refuse("it holds a space or a control character")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError as error:
        problem = ("its port is not a number from 1 to 65535" if "port" in str(error).lower()
                   else "its host is not a valid name or address")
        raise refuse(problem) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise refuse("only http:// and https:// URLs are called")
    if parts.fragment or text.endswith("#"):
        raise refuse("it has a #fragment (a `#` in a password is written %23)")
    if not host:
        raise refuse("it has no host")
    if port == 0:
        raise refuse("its port is not a number from 1 to 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            raise refuse("its host is not a valid name or address") from None
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.netloc.rpartition("@")[2]
    url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return HealthUrl(url=url, shown=shown_url(url), authorization=authorization,
                     has_secret=authorization is not None or bool(parts.query))


def parse_health_urls(texts: tuple[str, ...]) -> tuple[HealthUrl, ...]:
    return tuple(parse_health_url(text, i) for i, text in enumerate(texts, start=1))


class NotFollowed(Exception):
    """A redirect that is not followed: to another origin, or of a POST."""

    def __init__(self, code: int, elsewhere: str | None) -> None:
        super().__init__(code, elsewhere)
        self.code, self.elsewhere = code, elsewhere  # elsewhere: the origin, as shown

    def __str__(self) -> str:
        if self.elsewhere is not None:
            return (f"answered {self.code}, a redirect to another origin ({self.elsewhere}), "
                    "not followed")
        return f"answered {self.code}, a redirect, not followed (a webhook is posted to its URL)"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def _shown_origin(url: str) -> str:
    """scheme://host[:port]: never a redirect target's path, query or credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


class _WithinOrigin(urllib.request.HTTPRedirectHandler):
    """Follows a GET's redirect within its origin only: the Authorization header (which
    urllib copies onto the redirected request) never reaches another host."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        fp.close()  # not followed, or followed with a request of its own
        if _origin(newurl) != _origin(req.full_url):
            raise NotFollowed(code, _shown_origin(newurl))
        if req.get_method() != "GET":  # a POST redirected becomes a GET without its body
            raise NotFollowed(code, None)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def call(url: str, authorization: str | None, timeout: float, body: bytes | None = None,
         ) -> str | None:
    """One request (a GET, or a JSON POST of `body`), its answer read whole: None when
    it answered 2xx, else what went wrong, without the URL ("answered 503", "did not
    answer (TimeoutError)"): the caller names the URL as it may be shown. A redirect is
    followed only for a GET within the URL's origin; any other is what went wrong."""
    headers = {} if body is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers,
                                     method="GET" if body is None else "POST")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.build_opener(_WithinOrigin).open(request, timeout=timeout) \
                as answer:
            status = answer.status
            answer.read(MAX_ANSWER_BYTES)
    except NotFollowed as redirect:
        return str(redirect)
    except urllib.error.HTTPError as error:
        return f"answered {error.code}"
    except Exception as error:  # refused, reset, timed out, bad name: no answer
        reason = getattr(error, "reason", error)
        return f"did not answer ({type(reason).__name__})"
    return None if 200 <= status < 300 else f"answered {status}"


NOTIFY_OPTION = "--notify-url (or BACKFILL_NOTIFY_URL)"


@dataclass(frozen=True)
class NotifyUrl:
    url: str
    authorization: str | None
    shown: str  # scheme://host[:port]: never the path, the query or credentials


def parse_notify_urls(texts: Sequence[str]) -> tuple[NotifyUrl, ...]:
    """Checked before anything is read; a refusal never shows the URL."""
    urls = []
    for position, text in enumerate(texts, start=1):
        checked = parse_health_url(text, position, NOTIFY_OPTION, "webhook URL this tool "
                                   "can post to")
        parts = urllib.parse.urlsplit(checked.url)
        urls.append(NotifyUrl(checked.url, checked.authorization,
                              f"{parts.scheme}://{parts.netloc}"))
    return tuple(urls)


def shown_urls(texts: Sequence[str]) -> list[str]:
    """The URLs as recorded in the ledger and the log."""
    return [url.shown for url in parse_notify_urls(texts)]
