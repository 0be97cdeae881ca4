"""``APP_ENV=prod`` refuses to start in a dangerous configuration: the real gunicorn command exits non-zero and
its log names the variable to fix; a prod server with the event catalogue switched on says so in its log.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from realtime.config import DEV_JWT_SECRET
from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import server_env
from tests.helpers.redis_server import RedisServer, free_port

PROD_ORIGINS = "https://app.example.com,http://localhost:3000"


def prod_env(redis_url: str, **changes: str | None) -> dict[str, str | None]:
    """A valid prod environment for the Procfile command, with ``changes`` (``None`` unsets a variable)."""
    env = server_env(redis_url)
    env.update({"APP_ENV": "prod", "ALLOWED_ORIGINS": PROD_ORIGINS, "LOG_LEVEL": "INFO"})
    env.update(changes)
    return env


def exit_code_of(server: GunicornProcess, timeout: float = 30.0) -> int | None:
    """Spawn ``server``, wait until it exits by itself (or ``timeout`` passes), stop it, return its exit code."""
    server.spawn()
    deadline = time.monotonic() + timeout
    while server.running and time.monotonic() < deadline:
        time.sleep(0.1)
    still_running = server.running
    code = server.stop()
    assert not still_running, f"gunicorn kept running in a refused configuration; log:\n{server.log_tail()}"
    return code


@pytest.mark.parametrize(
    ("changes", "variable", "fix"),
    [
        pytest.param({"REDIS_URL": None}, "REDIS_URL", "REDIS_URL=redis://", id="without-redis"),
        pytest.param({"JWT_SECRET": None}, "JWT_SECRET", "random", id="without-jwt-secret"),
        pytest.param({"JWT_SECRET": DEV_JWT_SECRET}, "JWT_SECRET", "development secret", id="dev-jwt-secret"),
        pytest.param(
            {"ALLOWED_ORIGINS": "https://app.example.com,http://app.example.com"},
            "ALLOWED_ORIGINS",
            "https://app.example.com",
            id="plain-http-origin",
        ),
    ],
)
def test_prod_refuses_to_start(
    redis_server: RedisServer, tmp_path: Path, changes: dict[str, str | None], variable: str, fix: str
) -> None:
    server = GunicornProcess(free_port(), prod_env(redis_server.url, **changes), tmp_path, name="prod")

    code = exit_code_of(server)

    log = server.log_text()
    print(f"gunicorn exited with {code}")
    assert code not in (None, 0), log
    assert "ConfigError" in log and variable in log and fix in log, log
    assert DEV_JWT_SECRET not in log


def test_prod_with_the_catalogue_on_starts_and_warns(redis_server: RedisServer, tmp_path: Path) -> None:
    server = GunicornProcess(
        free_port(), prod_env(redis_server.url, WS_DOCS_ENABLED="true"), tmp_path, name="prod-docs"
    )
    with server:
        assert requests.get(f"{server.url}/ws-docs/spec", timeout=5, headers={"Connection": "close"}).ok
        warnings = [line for line in server.log_text().splitlines() if "WARNING" in line and "WS_DOCS_ENABLED" in line]
    assert warnings, server.log_text()
    print(warnings[0])


def test_prod_without_the_catalogue_starts_without_warnings(redis_server: RedisServer, tmp_path: Path) -> None:
    """The base of the refusal table is a prod configuration that starts cleanly."""
    with GunicornProcess(free_port(), prod_env(redis_server.url), tmp_path, name="prod-base") as server:
        assert requests.get(f"{server.url}/healthz", timeout=5, headers={"Connection": "close"}).ok
        log = server.log_text()
    assert "WARNING" not in log, log
