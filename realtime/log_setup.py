"""Process-wide logging: text or JSON lines, with secrets scrubbed from every record."""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

#: Anything shaped like a JWT, a bearer header or a token/key query parameter.
_SECRET_NAMES = r"(?:token|access_token|api_?key|key|password|secret)"
_SECRET_PATTERNS = (
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    re.compile(rf"(?i)(\b{_SECRET_NAMES}=)[^&\s\"']+"),
    re.compile(rf"(?i)(['\"]{_SECRET_NAMES}['\"]\s*:\s*['\"])[^'\"]+"),
)
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def scrub(text: str) -> str:
    """Replace tokens and keys in ``text`` with ``[redacted]``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    """Render the message once and scrub it, so no handler ever sees a raw token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


#: How python-engineio's ``_log_error_once`` ends the first report of a client's bad request (an unknown or
#: closed session, a refused origin, a wrong transport); tests/test_library_pins.py pins the text.
ENGINEIO_ONCE_SUFFIX = "(further occurrences of this error will be logged with level INFO)"


class ClientFaultFilter(logging.Filter):
    """Report python-engineio's first "bad request from a client" line as a WARNING, not an ERROR.

    Those lines describe what a client sent (a poll racing its own session's close, a refused origin), which
    the server answers with a 400; at ERROR they would page an operator for a client's race.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().endswith(ENGINEIO_ONCE_SUFFIX):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


class ScrubbingFormatter(logging.Formatter):
    """Text lines whose every part, tracebacks included, is scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                if isinstance(value, (int, float, bool, type(None))):
                    entry[key] = value
                else:
                    entry[key] = scrub(value if isinstance(value, str) else repr(value))
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger (idempotent: replaces our previous one)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_realtime", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._realtime = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
