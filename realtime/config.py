"""Settings: defaults, then the environment, then an explicit mapping (tests).

Everything is read once, in the app factory, and validated there: a misconfigured
process refuses to start with a message that names the variable and the fix. Each variable is declared
once, in :mod:`realtime.settings_table`, which types and checks it on its own; the rules here relate
several settings (what APP_ENV=prod refuses, the JWT keys, the message queue, the default rooms).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from realtime.settings_table import (
    DEFAULTS,
    FIELDS,
    HMAC_ALGORITHMS,
    TABLE,
    ConfigError,
    Settings,
)

__all__ = ["DEFAULTS", "DEV_JWT_SECRET", "ConfigError", "Settings", "gather", "load_settings"]

logger = logging.getLogger(__name__)

#: Used only outside prod when JWT_SECRET is unset, so that ``make run`` works out of the box.
DEV_JWT_SECRET = "realtime-dev-secret-not-for-production-use-0001"
MIN_HMAC_SECRET_BYTES = 32
MIN_PROD_API_KEY_CHARS = 24
MIN_ADMIN_TOKEN_CHARS = 32
#: The only hosts APP_ENV=prod accepts in a plain http:// origin (a developer's page against a prod server).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def gather(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, the environment and ``overrides`` (later wins)."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = dict(DEFAULTS)
    for name in DEFAULTS:
        if name in env:
            raw[name] = env[name]
    for name, value in (overrides or {}).items():
        raw[name] = value
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from defaults, the environment and ``overrides``.

    Each variable is parsed on its own first (:data:`realtime.settings_table.TABLE`), then the rules that
    relate several of them run.

    :raises ConfigError: naming the variable and how to fix it.
    """
    raw = gather(overrides, environ)
    values = {setting.name: setting.read(raw[setting.name]) for setting in TABLE}
    resolved = {attribute: values[setting.name] for attribute, setting in FIELDS.items()}
    prod = values["APP_ENV"] == "prod"
    warnings: list[str] = []
    resolved["message_queue_url"] = _redis_urls(values, raw["MESSAGE_QUEUE_URL"] is None, prod, warnings)
    if not values["REDIS_TLS_VERIFY"]:
        resolved["redis_url"] = _unverified(resolved["redis_url"])
        resolved["message_queue_url"] = _unverified(resolved["message_queue_url"])
        warnings.append(
            "REDIS_TLS_VERIFY=false: the certificate of a rediss:// Redis is not verified (the link is encrypted, "
            "but open to a machine in the middle); meant for a provider whose certificate is self-signed."
        )
    algorithms, verify_key, signing_key = _jwt_keys(values, prod, warnings)
    resolved.update(jwt_algorithms=algorithms, jwt_verify_key=verify_key, jwt_signing_key=signing_key)
    resolved["allowed_origins"] = _origins(values, prod)
    _check_default_rooms(values)
    resolved["ws_docs_enabled"] = _ws_docs(values, prod, warnings)
    _check_api_keys(values, prod)
    _check_admin(values)
    return Settings(**resolved, warnings=tuple(warnings))


def _redis_urls(values: Mapping[str, Any], queue_unset: bool, prod: bool, warnings: list[str]) -> str | None:
    """Refuse prod without Redis; return the message queue URL (REDIS_URL's unless MESSAGE_QUEUE_URL is set)."""
    redis_url: str | None = values["REDIS_URL"]
    if redis_url is None and prod:
        raise ConfigError(
            "REDIS_URL is not set; APP_ENV=prod needs Redis: without it the server runs as one process with "
            "in-memory stores and never checks a token's session, so any token signed with the secret passes. "
            "Set REDIS_URL=redis://host:6379/0 (or rediss://...)."
        )
    if redis_url is None:
        warnings.append(
            "REDIS_URL is not set: running as one process with in-memory stores; "
            "JWT sessions are NOT checked against a session store."
        )
    # Set but empty (None after parsing) disables the queue: one process with Redis stores.
    return redis_url if queue_unset else values["MESSAGE_QUEUE_URL"]


def _unverified(url: str | None) -> str | None:
    """``url`` asking redis-py not to verify the server's certificate, for a ``rediss://`` URL (Heroku Redis
    serves a self-signed one, and its add-on owns REDIS_URL, so the query parameter cannot be added there)."""
    if url is None or not url.startswith("rediss://") or "ssl_cert_reqs=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}ssl_cert_reqs=none"


def _jwt_keys(values: Mapping[str, Any], prod: bool, warnings: list[str]) -> tuple[tuple[str, ...], str, str | None]:
    """Choose the algorithm allow-list and keys: the HMAC secret, or the public (and private) key."""
    secret: str | None = values["JWT_SECRET"]
    public_key: str | None = values["JWT_PUBLIC_KEY"]
    algorithms: tuple[str, ...] | None = values["JWT_ALGORITHMS"]
    if algorithms is None:
        algorithms = ("RS256",) if public_key and not secret else ("HS256",)
    if set(algorithms) <= HMAC_ALGORITHMS:  # one family: the table refuses a mix
        if secret is None:
            if prod:
                raise ConfigError(
                    "JWT_SECRET is not set; APP_ENV=prod with HS* algorithms needs a random secret of at least "
                    f"{MIN_HMAC_SECRET_BYTES} bytes."
                )
            warnings.append("JWT_SECRET is not set: using the built-in development secret (never do this in prod).")
            secret = DEV_JWT_SECRET
        elif prod and secret == DEV_JWT_SECRET:
            raise ConfigError(
                "JWT_SECRET is the built-in development secret, which is public in realtime/config.py; "
                "APP_ENV=prod refuses it. Set JWT_SECRET to a random "
                f"{MIN_HMAC_SECRET_BYTES}+ byte string (python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
        if len(secret.encode()) < MIN_HMAC_SECRET_BYTES and prod:
            raise ConfigError(
                f"JWT_SECRET is {len(secret.encode())} bytes; HS256 needs at least {MIN_HMAC_SECRET_BYTES}. "
                f"Set JWT_SECRET to a random {MIN_HMAC_SECRET_BYTES}+ byte string."
            )
        if len(secret.encode()) < MIN_HMAC_SECRET_BYTES:
            warnings.append(f"JWT_SECRET is shorter than {MIN_HMAC_SECRET_BYTES} bytes; APP_ENV=prod would refuse it.")
        return algorithms, secret, secret
    if public_key is None:
        raise ConfigError(
            f"JWT_ALGORITHMS is {', '.join(algorithms)} but JWT_PUBLIC_KEY is not set; "
            "give the PEM public key that verifies the login service's tokens."
        )
    return algorithms, public_key, values["JWT_PRIVATE_KEY"]


def _origins(values: Mapping[str, Any], prod: bool) -> tuple[str, ...] | str:
    """Return the allowed origins: ``*`` outside prod when unset; prod wants an explicit https:// list."""
    origins: tuple[str, ...] | str | None = values["ALLOWED_ORIGINS"]
    if origins is None:
        if prod:
            raise ConfigError(
                "ALLOWED_ORIGINS is not set; with APP_ENV=prod list the browser origins allowed to connect, "
                "comma-separated (e.g. ALLOWED_ORIGINS=https://app.example.com)."
            )
        return "*"
    if origins == "*":
        if prod:
            raise ConfigError(
                "ALLOWED_ORIGINS is '*'; APP_ENV=prod refuses any-origin access. "
                "List the exact origins, comma-separated."
            )
        return "*"
    for origin in origins:
        if prod and origin.startswith("http://") and urlsplit(origin).hostname not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"ALLOWED_ORIGINS has {origin!r}; APP_ENV=prod accepts plain http:// only for localhost, "
                f"127.0.0.1 and [::1]. Serve that page over HTTPS and list "
                f"{'https://' + origin.removeprefix('http://')!r} instead."
            )
    return origins


def _check_default_rooms(values: Mapping[str, Any]) -> None:
    """Refuse more default rooms than a socket may be in."""
    default_rooms: tuple[str, ...] = values["SOCKET_DEFAULT_ROOMS"]
    max_rooms: int = values["MAX_ROOMS_PER_SOCKET"]
    if len(default_rooms) > max_rooms:
        raise ConfigError(
            f"SOCKET_DEFAULT_ROOMS lists {len(default_rooms)} rooms but MAX_ROOMS_PER_SOCKET is {max_rooms}."
        )


def _ws_docs(values: Mapping[str, Any], prod: bool, warnings: list[str]) -> bool:
    """Whether to serve the event catalogue: on outside prod unless switched off; a warning if on in prod."""
    enabled: bool | None = values["WS_DOCS_ENABLED"]
    if enabled is None:
        enabled = not prod
    if prod and enabled:
        warnings.append(
            "WS_DOCS_ENABLED=true with APP_ENV=prod: anyone can read the event catalogue at /ws-docs "
            "(every event, field and error code). Unset WS_DOCS_ENABLED unless that is intended."
        )
    return enabled


def _check_api_keys(values: Mapping[str, Any], prod: bool) -> None:
    """Refuse short API keys in prod."""
    short = [key for key in values["API_KEYS"] if len(key) < MIN_PROD_API_KEY_CHARS]
    if prod and short:
        raise ConfigError(
            f"API_KEYS has {len(short)} key(s) shorter than {MIN_PROD_API_KEY_CHARS} characters; "
            "APP_ENV=prod needs long random keys."
        )


def _check_admin(values: Mapping[str, Any]) -> None:
    """Refuse the admin view without a long admin token, in every environment: it can log anyone out."""
    if not values["ADMIN_ENABLED"]:
        return
    token: str | None = values["ADMIN_TOKEN"]
    if token is None:
        raise ConfigError(
            "ADMIN_ENABLED is true but ADMIN_TOKEN is not set; the admin view can disconnect sockets and log users "
            f"out. Set ADMIN_TOKEN to a random {MIN_ADMIN_TOKEN_CHARS}+ character string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))'), or unset ADMIN_ENABLED."
        )
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(
            f"ADMIN_TOKEN is {len(token)} characters; the admin view needs at least {MIN_ADMIN_TOKEN_CHARS}. "
            f"Set ADMIN_TOKEN to a random {MIN_ADMIN_TOKEN_CHARS}+ character string."
        )
