"""Process-wide logging: text or JSON lines, with secrets scrubbed from every record."""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from realtime.log_context import FIELDS, ContextFilter

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


#: The text format of every line, the app's and gunicorn's.
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class ScrubbingFormatter(logging.Formatter):
    """Text lines whose every part, tracebacks included, is scrubbed; the socket context is appended."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        bound = " ".join(f"{key}={getattr(record, key)}" for key in FIELDS if getattr(record, key, None))
        if bound:
            head, newline, rest = line.partition("\n")
            line = f"{head} [{bound}]{newline}{rest}"
        return scrub(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, worker (pid), extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "worker": record.process,
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


#: The DEBUG_USERS lines (:mod:`realtime.sockets.event_log`).
DEBUG_LOGGER = "realtime.debug"
#: The failed events' lines.
EVENTS_LOGGER = "realtime.events"


class AtLevel(logging.Filter):
    """Pass records at ``level`` or above, and every DEBUG_USERS line."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or record.name == DEBUG_LOGGER


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger (idempotent: replaces our previous one).

    In JSON, Python warnings and a greenlet's uncaught error (which Python and gevent print raw) go through it
    too, so every line of stderr is JSON. The DEBUG_USERS lines are printed at any level.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_realtime", False):
            root.removeHandler(handler)
    root.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler._realtime = True  # type: ignore[attr-defined]
    handler.addFilter(AtLevel(root.level))
    handler.addFilter(RedactingFilter())
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else ScrubbingFormatter())
    root.addHandler(handler)
    # Failed events are INFO lines the recent-errors buffer keeps whatever LOG_LEVEL says; AtLevel keeps
    # them off stderr below it. The DEBUG_USERS lines were asked for: they are printed at any level.
    logging.getLogger(EVENTS_LOGGER).setLevel(min(logging.INFO, root.level))
    logging.getLogger(DEBUG_LOGGER).setLevel(min(logging.INFO, root.level))
    logging.captureWarnings(fmt == "json")
    _log_greenlet_errors(fmt == "json")


def _log_greenlet_errors(enabled: bool) -> None:
    """In JSON, make the gevent hub log a greenlet's uncaught error, which it prints as a raw traceback
    otherwise; in text, leave gevent's own (readable) report."""
    hub_module = sys.modules.get("gevent.hub")
    if hub_module is None:
        return
    hub = hub_module.get_hub()
    if not enabled:
        vars(hub).pop("print_exception", None)
        return
    gevent_log = logging.getLogger("gevent.hub")

    def print_exception(context: object, kind: Any, value: Any, tb: Any) -> None:
        # The function's name only: a greenlet's repr lists its arguments, which can be a payload.
        where = getattr(getattr(context, "_run", None), "__qualname__", None) or type(context).__name__
        gevent_log.error("greenlet %s failed with %s", where, getattr(kind, "__name__", "exception"),
                         exc_info=(kind, value, tb))

    hub.print_exception = print_exception


def gunicorn_logconfig(fmt: str = "text", level: str = "info") -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its master's and workers' lines in our format, scrubbed.

    gunicorn's loggers get a handler of their own and do not propagate: in a worker the app's root handler
    would print each line a second time. The root logger gets no handler here; the app adds its own.
    """
    formatter = {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"()": f"{__name__}.ScrubbingFormatter"}
    gunicorn_logger = {"level": level.upper(), "handlers": ["stderr"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level.upper(), "handlers": []},
        "loggers": {"gunicorn.error": gunicorn_logger, "gunicorn.access": {**gunicorn_logger, "level": "INFO"}},
        "filters": {"redact": {"()": f"{__name__}.RedactingFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["redact"],
            }
        },
        "formatters": {"line": formatter},
    }
