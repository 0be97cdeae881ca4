"""HTTP body limits on a real gunicorn server: an oversized body is answered ``413 PAYLOAD_TOO_LARGE`` before
it is read (by its ``Content-Length``, or while streaming a chunked one), and JSON nested deeper than the
depth limit is a ``400 VALIDATION_ERROR`` instead of a ``RecursionError`` -- on every POST route.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from realtime.config import DEFAULTS
from tests.helpers.e2e_kit import API_KEY, Cluster

#: The documented HTTP body limit with the default MAX_PAYLOAD_BYTES: twice an event payload.
BODY_LIMIT = 2 * int(DEFAULTS["MAX_PAYLOAD_BYTES"] or 0)
MB = 1024 * 1024
#: Every POST route of a local server: the publish API and the development token endpoint.
ROUTES = [
    "/api/v1/emit",
    "/api/v1/notifications",
    "/api/v1/parties/p-1/status",
    "/api/v1/parties/p-1/media",
    "/api/v1/games/g-1/players",
    "/dev/token",
]
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", "Connection": "close"}


def worker_pid(cluster: Cluster) -> int:
    """The pid of server A's only worker (a child of the gunicorn master)."""
    master = cluster.a.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of ``pid``, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def assert_envelope(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with the standard failure envelope carrying ``code``."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    envelope = response.json()
    assert set(envelope) == {"ok", "error"} and envelope["ok"] is False, envelope
    error: dict[str, Any] = envelope["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON-looking body of ``total`` bytes in pieces, so requests sends it chunked (no Content-Length)."""
    yield b'{"notification": {"type": "x", "title": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}}'


def nested(depth: int) -> bytes:
    """An object whose ``userIds`` member is ``depth`` arrays deep."""
    return b'{"userIds": ' + b"[" * depth + b"]" * depth + b"}"


def test_60_mb_body_is_refused_before_it_is_read(cluster: Cluster, no_server_errors: None) -> None:
    pid = worker_pid(cluster)
    before = memory_kib(pid)
    body = b'{"userIds": ["u"], "notification": {"type": "x", "title": "' + b"a" * (60 * MB) + b'"}}'

    response = requests.post(f"{cluster.a.url}/api/v1/notifications", data=body, headers=HEADERS, timeout=120)

    after = memory_kib(pid)
    rss_growth = (after["VmRSS"] - before["VmRSS"]) / 1024
    peak_growth = (after["VmHWM"] - before["VmHWM"]) / 1024
    print(f"60 MB body: worker RSS {before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f} MB "
          f"(+{rss_growth:.1f}), peak +{peak_growth:.1f} MB")
    error = assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert str(BODY_LIMIT) in error["message"], error
    assert peak_growth < 50, f"the worker's peak memory grew by {peak_growth:.1f} MB"
    assert rss_growth < 50, f"the worker's memory grew by {rss_growth:.1f} MB"


@pytest.mark.parametrize("route", ROUTES)
def test_body_over_the_limit_is_413_on_every_route(cluster: Cluster, route: str) -> None:
    body = b'{"userId": "' + b"a" * BODY_LIMIT + b'"}'

    response = requests.post(f"{cluster.a.url}{route}", data=body, headers=HEADERS, timeout=30)

    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("route", ROUTES)
def test_chunked_body_over_the_limit_is_413_on_every_route(cluster: Cluster, route: str) -> None:
    response = requests.post(f"{cluster.a.url}{route}", data=chunks(3 * BODY_LIMIT), headers=HEADERS, timeout=60)

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("depth", [32, 100_000])
@pytest.mark.parametrize("route", ROUTES)
def test_deeply_nested_json_is_a_validation_error_on_every_route(
    cluster: Cluster, no_server_errors: None, route: str, depth: int
) -> None:
    response = requests.post(f"{cluster.a.url}{route}", data=nested(depth), headers=HEADERS, timeout=30)

    error = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "32" in error["message"] and "deep" in error["message"], error


def test_nesting_at_the_limit_is_parsed(cluster: Cluster) -> None:
    """32 levels (the body object and 31 arrays) parse; the schema then refuses the shape by field."""
    response = requests.post(f"{cluster.a.url}/api/v1/games/g-1/players", data=nested(31), headers=HEADERS, timeout=30)

    error = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "userIds" in error.get("fields", {}), error


def test_notification_to_1000_users_still_fits(cluster: Cluster, no_server_errors: None) -> None:
    user_ids = [f"{index:04d}-" + "u" * 59 for index in range(1000)]
    body = json.dumps({"userIds": user_ids, "notification": {"type": "system", "title": "Maintenance at noon"}})
    print(f"notification to 1000 users of 64-character ids: {len(body)} bytes (limit {BODY_LIMIT})")

    response = requests.post(f"{cluster.a.url}/api/v1/notifications", data=body, headers=HEADERS, timeout=30)

    assert response.status_code == 202, response.text[:300]
    assert response.json()["data"]["recipients"] == 1000

