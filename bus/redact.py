"""Camera URLs carry credentials; nothing Sightline returns, stores or logs may show them.

Shared by every process kind (ingest quotes URLs in its errors, the sink stores status reasons,
the API answers with camera URLs), so it lives in `bus`. One list of secret parameter names
serves URLs and free text alike; it is matched case-insensitively and by substring, because
vendors spell the same thing many ways (`passwd`, `user_pwd`, `access_token`, `AuthKey`,
`X-Api-Key`): masking a harmless parameter costs nothing, missing a password leaks it.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Parts of a parameter name that make its value a secret (plus the bare `pw`); `key` and `sig`
# only at the end of a word, so `keyframes=1` or `signal=` stay readable.
SECRET_WORDS = (
    "pass", "pwd", "token", "secret", "auth", "cred", "session", "cookie",
    "key(?![a-z])", "sig(?:nature)?(?![a-z])",
)  # fmt: skip
_NAME = r"[A-Za-z0-9_.\-]*(?:" + "|".join(SECRET_WORDS) + r")[A-Za-z0-9_.\-]*|pw"
SECRET_PARAMS = re.compile(rf"^(?:{_NAME})$", re.I)
# scheme://userinfo@ — in free text such as exception messages and log lines. Any userinfo is
# masked: `user:password@` keeps the user, a lone `TOKEN@` (a bearer token as user name) is masked whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s?#\"'<>]*)@")
# name=value after ? & or ; (RTSP cameras take `;user=admin;password=x` in the path).
_PARAM_SECRET = re.compile(rf"(?P<k>[?&;](?:{_NAME})=)[^&;\s#\"'<>]*", re.I)


def _mask_userinfo(info: str) -> str:
    user, colon, _ = info.partition(":")
    return f"{user}:{MASK}" if colon else MASK


def redact_url(url: str) -> str:
    """rtsp://admin:hunter2@cam/live?token=x → rtsp://admin:***@cam/live?token=***"""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{_mask_userinfo(userinfo)}@{hostport}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(SECRET_PARAMS.match(k) for k, _ in pairs):
        query = urlencode([(k, MASK if SECRET_PARAMS.match(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) != (parts.netloc, parts.query):  # rebuilt only when masked: urlunsplit
        url = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))  # drops an empty `//`
    # The text pass catches what the structure missed: `;password=` in the path, a fragment.
    return redact_text(url)


def redact_text(text: str) -> str:
    """Mask credentials inside any text (log messages, error strings)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{_mask_userinfo(m['info'])}@", text)
    return _PARAM_SECRET.sub(lambda m: f"{m['k']}{MASK}", text)


class RedactingFilter(logging.Filter):
    """A handler filter: formats the record once, masks credentials, and freezes the result.

    Tracebacks are masked too (an FFmpeg error quotes the URL it could not open): the formatted
    exception goes into `exc_text` and `exc_info` is dropped, so no formatter can print it raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def install_log_redaction() -> None:
    """Attach the filter to every root handler (idempotent), so library log lines are covered too."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
