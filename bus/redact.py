"""Camera URLs carry credentials; nothing Sightline returns, stores or logs may show them.

Shared by every process kind (ingest quotes URLs in its errors, the sink stores status reasons,
the API answers with camera URLs), so it lives in `bus`."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_PARAMS = re.compile(
    r"^(pass(word)?|pwd|token|secret|key|api[_-]?key|auth|sig(nature)?|credentials?)$", re.I
)
# scheme://user:password@host — in free text such as exception messages and log lines.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]*)@")
_QUERY_SECRET = re.compile(
    r"(?P<k>[?&](pass(word)?|pwd|token|secret|key|api[_-]?key|auth|sig(nature)?|credentials?)=)[^&\s#\"']*",
    re.I,
)


def redact_url(url: str) -> str:
    """rtsp://admin:hunter2@cam/live?token=x → rtsp://admin:***@cam/live?token=***"""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if parts.password is not None or "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_PARAMS.match(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask credentials inside any text (log messages, error strings)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['k']}{MASK}", text)


class RedactingFilter(logging.Filter):
    """A handler filter: formats the record once, masks credentials, and freezes the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    """Attach the filter to every root handler (idempotent), so library log lines are covered too."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
