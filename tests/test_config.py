"""Settings validation: a misconfigured process refuses to start and names the variable to fix."""
from __future__ import annotations

from typing import Any

import pytest

from realtime import create_app
from realtime.config import DEV_JWT_SECRET, ConfigError, load_settings

PROD_SECRET = "p" * 40
PROD_ORIGINS = "https://app.example.com,https://admin.example.com:8443"
PROD_REDIS = "redis://redis.internal:6379/0"


def prod(**changes: str | None) -> dict[str, Any]:
    """A complete, valid prod configuration with ``changes`` applied (``None`` removes a variable)."""
    overrides: dict[str, Any] = {
        "APP_ENV": "prod",
        "JWT_SECRET": PROD_SECRET,
        "ALLOWED_ORIGINS": PROD_ORIGINS,
        "REDIS_URL": PROD_REDIS,
    }
    overrides.update(changes)
    return {name: value for name, value in overrides.items() if value is not None}


@pytest.mark.parametrize(
    ("overrides", "variable", "also"),
    [
        pytest.param({"APP_ENV": "staging"}, "APP_ENV", "staging", id="app-env-unknown"),
        pytest.param(prod(JWT_SECRET=None), "JWT_SECRET", "32", id="prod-without-jwt-secret"),
        pytest.param(prod(JWT_SECRET="123456789"), "JWT_SECRET", "32", id="prod-jwt-secret-9-bytes"),
        pytest.param(prod(ALLOWED_ORIGINS=None), "ALLOWED_ORIGINS", "prod", id="prod-without-origins"),
        pytest.param(prod(ALLOWED_ORIGINS="*"), "ALLOWED_ORIGINS", "'*'", id="prod-any-origin"),
        pytest.param(
            {"ALLOWED_ORIGINS": "https://a.example/x"}, "ALLOWED_ORIGINS", "https://a.example/x", id="origin-with-path"
        ),
        pytest.param({"JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS", "'none'", id="jwt-alg-none"),
        pytest.param({"JWT_ALGORITHMS": "HS256,RS256"}, "JWT_ALGORITHMS", "mixes", id="jwt-alg-hmac-rsa-mix"),
        pytest.param({"JWT_ALGORITHMS": "RS256"}, "JWT_PUBLIC_KEY", "RS256", id="rs256-without-public-key"),
        pytest.param({"REDIS_URL": "http://x"}, "REDIS_URL", "http://x", id="redis-url-http"),
        pytest.param({"SOCKET_DEFAULT_ROOMS": "room:x"}, "SOCKET_DEFAULT_ROOMS", "room:x", id="default-room-prefix"),
        pytest.param(
            {"SOCKET_DEFAULT_ROOMS": "user:../x"}, "SOCKET_DEFAULT_ROOMS", "user:../x", id="default-room-traversal"
        ),
        pytest.param({"PORT": "0"}, "PORT", "between 1 and 65535", id="port-zero"),
        pytest.param({"PORT": "abc"}, "PORT", "whole number", id="port-not-a-number"),
        pytest.param({"LOG_FORMAT": "xml"}, "LOG_FORMAT", "xml", id="log-format-xml"),
        pytest.param({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", "LOUD", id="log-level-loud"),
        pytest.param(
            {"SOCKET_TRANSPORTS": "carrier-pigeon"}, "SOCKET_TRANSPORTS", "carrier-pigeon", id="transport-unknown"
        ),
        pytest.param({"WS_DOCS_ENABLED": "maybe"}, "WS_DOCS_ENABLED", "maybe", id="ws-docs-not-a-bool"),
        pytest.param(
            {"SOCKETIO_CHANNEL": " "}, "SOCKETIO_CHANNEL", "unset it to use the default 'realtime'", id="required-empty"
        ),
        pytest.param({"MESSAGE_QUEUE_URL": "http://q"}, "MESSAGE_QUEUE_URL", "http://q", id="queue-url-http"),
        pytest.param({"PUBLIC_URL": "https://rt.example.com/x"}, "PUBLIC_URL", "e.g. https://", id="public-url-path"),
        pytest.param({"SESSION_POLICY": "many"}, "SESSION_POLICY", "'many'", id="session-policy-unknown"),
        pytest.param({"CHAT_JOIN_HISTORY": "101"}, "CHAT_JOIN_HISTORY", "between 0 and 100", id="int-above-maximum"),
        pytest.param({"EVENT_RATE": "0.05"}, "EVENT_RATE", "at least 0.1", id="number-below-minimum"),
        pytest.param({"PING_TIMEOUT": "soon"}, "PING_TIMEOUT", "must be a number", id="number-not-a-number"),
        pytest.param({"MAX_ROOMS_PER_SOCKET": "1"}, "MAX_ROOMS_PER_SOCKET", "2 rooms", id="room-cap-below-defaults"),
        pytest.param(prod(API_KEYS="short-key"), "API_KEYS", "24", id="prod-short-api-key"),
        pytest.param(prod(REDIS_URL=None), "REDIS_URL", "Set REDIS_URL=redis://", id="prod-without-redis"),
        pytest.param(
            prod(JWT_SECRET=DEV_JWT_SECRET), "JWT_SECRET", "built-in development secret", id="prod-dev-jwt-secret"
        ),
        pytest.param(
            prod(ALLOWED_ORIGINS="https://app.example.com,http://app.example.com"),
            "ALLOWED_ORIGINS",
            "'http://app.example.com'; APP_ENV=prod accepts plain http:// only for localhost",
            id="prod-plain-http-origin",
        ),
        pytest.param(
            prod(ALLOWED_ORIGINS="http://localhost.example.com:3000"),
            "ALLOWED_ORIGINS",
            "list 'https://localhost.example.com:3000' instead",
            id="prod-http-origin-that-only-looks-local",
        ),
    ],
)
def test_misconfiguration_is_refused_naming_the_variable(overrides: dict[str, Any], variable: str, also: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides, environ={})
    message = str(excinfo.value)
    assert variable in message
    assert also in message


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(prod(JWT_SECRET=None), id="prod-without-jwt-secret"),
        pytest.param(prod(JWT_SECRET=DEV_JWT_SECRET), id="prod-dev-jwt-secret"),
        pytest.param(prod(JWT_SECRET=DEV_JWT_SECRET[:9]), id="prod-short-jwt-secret"),
    ],
)
def test_refused_secret_is_never_quoted(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides, environ={})
    assert overrides.get("JWT_SECRET", DEV_JWT_SECRET) not in str(excinfo.value)


def test_prod_accepts_plain_http_origins_on_the_loopback_only() -> None:
    origins = "https://app.example.com,http://localhost:3000,http://127.0.0.1:8080,http://[::1]:5000"
    settings = load_settings(prod(ALLOWED_ORIGINS=origins), environ={})
    assert settings.allowed_origins == tuple(origins.split(","))


def test_prod_with_the_catalogue_switched_on_warns() -> None:
    settings = load_settings(prod(WS_DOCS_ENABLED="true"), environ={})
    assert settings.ws_docs_enabled is True
    (warning,) = settings.warnings
    assert "WS_DOCS_ENABLED=true with APP_ENV=prod" in warning and "/ws-docs" in warning


@pytest.mark.parametrize(
    "overrides",
    [pytest.param({}, id="local-defaults"), pytest.param(prod(), id="prod-base")],
)
def test_bases_of_the_misconfiguration_table_load(overrides: dict[str, Any]) -> None:
    """Each refused row differs from one of these by a single variable."""
    load_settings(overrides, environ={})


def test_full_prod_config_loads_typed_and_without_warnings() -> None:
    settings = load_settings(prod(API_KEYS="k" * 32), environ={})
    assert settings.app_env == "prod"
    assert settings.jwt_algorithms == ("HS256",)
    assert settings.jwt_verify_key == PROD_SECRET
    assert settings.allowed_origins == ("https://app.example.com", "https://admin.example.com:8443")
    assert settings.redis_url == PROD_REDIS
    assert settings.message_queue_url == PROD_REDIS
    assert settings.api_keys == ("k" * 32,)
    assert settings.default_rooms == ("user:{userId}", "broadcast:all")
    assert settings.port == 5000
    assert settings.warnings == ()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(prod(), False, id="prod-default-off"),
        pytest.param({"APP_ENV": "local"}, True, id="local-default-on"),
        pytest.param({"APP_ENV": "dev"}, True, id="dev-default-on"),
        pytest.param(prod(WS_DOCS_ENABLED="true"), True, id="prod-explicit-true"),
        pytest.param({"APP_ENV": "dev", "WS_DOCS_ENABLED": "off"}, False, id="dev-explicit-off"),
    ],
)
def test_ws_docs_enabled(overrides: dict[str, Any], expected: bool) -> None:
    assert load_settings(overrides, environ={}).ws_docs_enabled is expected


def test_local_without_secret_or_redis_loads_with_warnings() -> None:
    settings = load_settings({"APP_ENV": "local"}, environ={})
    assert settings.jwt_verify_key == DEV_JWT_SECRET
    assert settings.redis_url is None
    assert settings.message_queue_url is None
    assert any("JWT_SECRET" in warning for warning in settings.warnings)
    assert any("REDIS_URL" in warning for warning in settings.warnings)


def test_local_short_secret_loads_with_warning() -> None:
    settings = load_settings({"JWT_SECRET": "123456789"}, environ={})
    assert settings.jwt_verify_key == "123456789"
    assert any("JWT_SECRET" in warning and "32" in warning for warning in settings.warnings)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"REDIS_URL": "redis://r:6379/0"}, "redis://r:6379/0", id="defaults-to-redis-url"),
        pytest.param({"REDIS_URL": "redis://r:6379/0", "MESSAGE_QUEUE_URL": ""}, None, id="empty-disables"),
        pytest.param(
            {"REDIS_URL": "redis://r:6379/0", "MESSAGE_QUEUE_URL": "redis://q:6379/1"},
            "redis://q:6379/1",
            id="explicit-queue",
        ),
        pytest.param({}, None, id="no-redis-no-queue"),
    ],
)
def test_message_queue_url(overrides: dict[str, Any], expected: str | None) -> None:
    assert load_settings(overrides, environ={}).message_queue_url == expected


@pytest.mark.parametrize(
    ("overrides", "environ", "expected"),
    [
        pytest.param({}, {}, 5000, id="default"),
        pytest.param({}, {"PORT": "6000"}, 6000, id="environ-over-default"),
        pytest.param({"PORT": "7000"}, {"PORT": "6000"}, 7000, id="override-over-environ"),
        pytest.param({"PORT": 7001}, {}, 7001, id="override-as-int"),
    ],
)
def test_precedence_defaults_then_environ_then_overrides(
    overrides: dict[str, Any], environ: dict[str, str], expected: int
) -> None:
    assert load_settings(overrides, environ=environ).port == expected


def test_empty_variables_without_default_count_as_unset() -> None:
    settings = load_settings({"JWT_ISSUER": "  ", "PUBLIC_URL": "", "API_KEYS": ""}, environ={})
    assert settings.jwt_issuer is None
    assert settings.public_url is None
    assert settings.api_keys == ()


def test_environ_is_validated_like_overrides() -> None:
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings({}, environ={"LOG_FORMAT": "xml"})


def test_create_app_refuses_a_bad_config() -> None:
    with pytest.raises(ConfigError, match="APP_ENV"):
        create_app({"APP_ENV": "staging"})


@pytest.mark.parametrize(
    ("redis_url", "queue_url", "expected_redis", "expected_queue"),
    [
        ("rediss://h:6380/0", None, "rediss://h:6380/0?ssl_cert_reqs=none", "rediss://h:6380/0?ssl_cert_reqs=none"),
        ("rediss://h/0?health_check_interval=5", None, "rediss://h/0?health_check_interval=5&ssl_cert_reqs=none",
         "rediss://h/0?health_check_interval=5&ssl_cert_reqs=none"),
        ("rediss://h/0?ssl_cert_reqs=required", None, "rediss://h/0?ssl_cert_reqs=required",
         "rediss://h/0?ssl_cert_reqs=required"),
        ("redis://h/0", "rediss://q/0", "redis://h/0", "rediss://q/0?ssl_cert_reqs=none"),
    ],
    ids=["tls", "tls-with-query", "explicit-choice-kept", "plain-stores-tls-queue"],
)
def test_redis_tls_verify_false_stops_verifying_rediss_urls_only(
    redis_url: str, queue_url: str | None, expected_redis: str, expected_queue: str
) -> None:
    overrides = {"REDIS_URL": redis_url, "REDIS_TLS_VERIFY": "false"}
    if queue_url is not None:
        overrides["MESSAGE_QUEUE_URL"] = queue_url
    settings = load_settings(overrides, environ={})

    assert (settings.redis_url, settings.message_queue_url) == (expected_redis, expected_queue)
    assert any("REDIS_TLS_VERIFY=false" in warning for warning in settings.warnings)


def test_redis_urls_are_verified_by_default() -> None:
    settings = load_settings({"REDIS_URL": "rediss://h:6380/0"}, environ={})
    assert settings.redis_url == "rediss://h:6380/0"
