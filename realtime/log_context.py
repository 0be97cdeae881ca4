"""The socket, user and event a log line was written for, carried by a context variable.

Each greenlet has its own :mod:`contextvars` context (greenlet ≥ 0.4.17), so the fields bound while one
socket's event is handled never leak into another socket's lines. :class:`ContextFilter`, installed on the
process's handlers, copies them onto every record; a field passed with ``extra=`` wins over the context.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: The fields a context may carry, as log lines spell them.
FIELDS = ("sid", "userId", "event")

_context: ContextVar[dict[str, str] | None] = ContextVar("realtime_log_context", default=None)


@contextmanager
def log_context(**fields: str) -> Iterator[dict[str, str]]:
    """Bind ``fields`` (``sid``, ``userId``, ``event``) to every line logged inside the block.

    :returns: the bound mapping; :func:`bind` adds to it once more is known (the user after authentication).
    """
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield _context.get()  # type: ignore[misc]
    finally:
        _context.reset(token)


def bind(**fields: str) -> None:
    """Add ``fields`` to the innermost :func:`log_context`; outside any block, do nothing (no context to leak)."""
    current = _context.get()
    if current is not None:
        current.update(fields)


def current() -> dict[str, str]:
    """A copy of the fields bound here (empty outside any :func:`log_context`)."""
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copy the bound fields onto each record that does not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get()
        if bound:
            for key, value in bound.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True
