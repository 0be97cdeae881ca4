"""Logging: secrets scrubbed from every message, JSON lines for log shippers, plain text for humans."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from realtime.log_setup import configure_logging, scrub

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsInNpZCI6InMxIn0.c2lnbmF0dXJlLXNlY3JldA"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Autouse, so it is set up before ``capsys`` and torn down after it: the final handler writes to real stderr."""
    yield
    configure_logging("WARNING", "text")


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        pytest.param(
            f"rejected handshake with {JWT} from 10.0.0.1",
            JWT,
            "rejected handshake with [redacted] from 10.0.0.1",
            id="jwt-in-sentence",
        ),
        pytest.param(
            "Authorization: Bearer abc.def", "abc.def", "Authorization: Bearer [redacted]", id="bearer-header"
        ),
        pytest.param(
            "GET /socket.io/?token=xyz&x=1 200", "xyz", "GET /socket.io/?token=[redacted]&x=1 200", id="token-query"
        ),
        pytest.param(
            "POST /emit api_key=sk_live_4f9a2c done",
            "sk_live_4f9a2c",
            "POST /emit api_key=[redacted] done",
            id="api-key-param",
        ),
        pytest.param(f"Bearer {JWT}", JWT, "Bearer [redacted]", id="bearer-jwt"),
        pytest.param("auth={'token': 'abc123'}", "abc123", "auth={'token': '[redacted]'}", id="python-dict"),
        pytest.param('{"apiKey": "k-99"}', "k-99", '{"apiKey": "[redacted]"}', id="json-object"),
        pytest.param("password=hunter2 ok", "hunter2", "password=[redacted] ok", id="password-param"),
    ],
)
def test_scrub_redacts(text: str, secret: str, expected: str) -> None:
    cleaned = scrub(text)
    assert cleaned == expected
    assert secret not in cleaned


@pytest.mark.parametrize("text", ["alice joined group:lobby (3 sockets)", "monkey=banana", "turkey=3"])
def test_scrub_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


def test_json_extra_fields_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("realtime.test.extra").info("handshake", extra={"auth": f"Bearer {JWT}", "attempt": 2})

    err = capsys.readouterr().err
    entry = json.loads(err)
    assert entry["auth"] == "Bearer [redacted]"
    assert entry["attempt"] == 2
    assert JWT not in err


def test_text_traceback_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logging.getLogger("realtime.test.tb").exception("handler failed")

    err = capsys.readouterr().err
    assert "ValueError: bad token [redacted]" in err
    assert JWT not in err


def test_json_lines_with_fields_and_redacted_args(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("realtime.test.json")
    log.info("user %s connected with %s", "alice", JWT, extra={"sid": "abc123", "room_count": 2})
    log.warning("second line")
    log.debug("below the configured level")

    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)

    assert first["level"] == "INFO"
    assert first["logger"] == "realtime.test.json"
    assert first["message"] == "user alice connected with [redacted]"
    assert first["sid"] == "abc123"
    assert first["room_count"] == 2
    assert datetime.fromisoformat(first["ts"]).utcoffset() is not None
    assert second["level"] == "WARNING"
    assert second["message"] == "second line"
    assert JWT not in err


def test_json_exception_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("realtime.test.json")
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        log.exception("handshake failed")

    err = capsys.readouterr().err
    (entry,) = (json.loads(line) for line in err.splitlines())
    assert entry["level"] == "ERROR"
    assert entry["message"] == "handshake failed"
    assert "ValueError: bad token [redacted]" in entry["exc"]
    assert JWT not in err


def test_text_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("realtime.test.text").warning("token for %s is %s", "alice", f"Bearer {JWT}")
    logging.getLogger("realtime.test.text").debug("below the configured level")

    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert " WARNING " in line
    assert line.endswith("realtime.test.text: token for alice is Bearer [redacted]")
    assert JWT not in err


def test_configure_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    configure_logging("INFO", "json")
    logging.getLogger("realtime.test.once").warning("only once")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "only once"
