"""Loopback ports for the processes runway starts, and URLs as runway prints them."""

from __future__ import annotations

import re
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_PARAMS = re.compile(r"(?i)([?&;](?:password|passwd|pwd)=)[^&;#\s]*")
_HIDE = r"\1***"


def redact_url(url: str) -> str:
    """``url`` as runway prints or logs it: a password in its userinfo or its query as ``***``.

    ``postgresql://runway:s3cret@db/x?password=y`` -> ``postgresql://runway:***@db/x?password=***``;
    a token alone in the userinfo (``https://<token>@host``) is hidden the same way. Anything
    that is not a URL comes back unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    return f"{scheme}://{netloc}{_SECRET_PARAMS.sub(_HIDE, tail)}"


def redact_text(text: str) -> str:
    """``text`` (a message, an exception's words) with every URL in it redacted."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
