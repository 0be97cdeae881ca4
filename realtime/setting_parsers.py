"""Parsers of the settings table: each turns a variable's stripped text into its typed value, or raises
:class:`ConfigError` naming the variable and how to fix it."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

APP_ENVS = ("local", "dev", "prod")
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
ROOM_TEMPLATE = re.compile(r"^(user|group|game|party|broadcast):(\{userId\}|[A-Za-z0-9_-]{1,64})$")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
APP_ENV_HINT = f"expected one of {', '.join(APP_ENVS)}"
POLICY_HINT = "use 'single' (a new login logs out the old session) or 'multi'"
LOG_LEVEL_HINT = "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
LOG_FORMAT_HINT = "use 'text' or 'json'"

#: Turns a variable's stripped text (empty only where the default is) into its value; raises :class:`ConfigError`.
Parser = Callable[[str, str], Any]


class ConfigError(ValueError):
    """Raised at start-up when a setting is missing, malformed or unsafe."""


def text(name: str, value: str) -> str:
    """Any non-empty text."""
    return value


def items(name: str, value: str) -> tuple[str, ...]:
    """A comma-separated list; blanks between commas are dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def whole(minimum: int, maximum: int | None = None) -> Parser:
    """A whole number within bounds."""

    def parse(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} is {value!r}; it must be a whole number.") from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{name} is {number}; it must be {bound}.")
        return number

    return parse


def number(minimum: float) -> Parser:
    """A number (seconds, rates) of at least ``minimum``."""

    def parse(name: str, value: str) -> float:
        try:
            result = float(value)
        except ValueError:
            raise ConfigError(f"{name} is {value!r}; it must be a number.") from None
        if result < minimum:
            raise ConfigError(f"{name} is {result}; it must be at least {minimum}.")
        return result

    return parse


def choice(choices: tuple[str, ...], normalize: Callable[[str], str], hint: str) -> Parser:
    """One of ``choices`` after ``normalize`` (case); ``hint`` says what to use instead."""

    def parse(name: str, value: str) -> str:
        chosen = normalize(value)
        if chosen not in choices:
            raise ConfigError(f"{name} is {chosen!r}; {hint}.")
        return chosen

    return parse


def flag(name: str, value: str) -> bool:
    """true/false, yes/no, on/off or 1/0."""
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} is {value!r}; use true or false.")


def redis_address(name: str, value: str) -> str:
    """A Redis URL."""
    if not value.startswith(REDIS_SCHEMES):
        raise ConfigError(f"{name} is {value!r}; it must start with redis://, rediss:// or unix://.")
    return value


def base_url(name: str, value: str) -> str:
    """The base URL clients connect to, without a path."""
    if not re.fullmatch(r"(https?|wss?)://[^/\s]+/?", value):
        raise ConfigError(
            f"{name} is {value!r}; give the public base URL clients connect to, e.g. https://rt.example.com."
        )
    return value


def pem(name: str, value: str) -> str:
    """A PEM key; ``\\n`` escapes (one-line environment values) become newlines."""
    return value.replace("\\n", "\n")


def algorithm_list(name: str, value: str) -> tuple[str, ...]:
    """An allow-list of JWT algorithms of one family; ``none`` is never accepted."""
    algorithms = items(name, value)
    known = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS
    unknown = [a for a in algorithms if a not in known]
    if unknown or not algorithms:
        raise ConfigError(
            f"{name} has {', '.join(map(repr, unknown)) or 'nothing'}; allowed: "
            f"{', '.join(sorted(known))} ('none' is never accepted)."
        )
    hmac = [a for a in algorithms if a in HMAC_ALGORITHMS]
    if hmac and len(hmac) != len(algorithms):
        raise ConfigError(
            f"{name} mixes HMAC and public-key algorithms ({', '.join(algorithms)}); "
            "that invites algorithm confusion. Use one family."
        )
    return algorithms


def origin_list(name: str, value: str) -> tuple[str, ...] | str:
    """``*`` or comma-separated ``scheme://host[:port]`` browser origins."""
    if value == "*":
        return "*"
    listed = items(name, value)
    for origin in listed:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigError(f"{name} has {origin!r}; each origin is scheme://host[:port] with no path.")
    return listed


def transport_list(name: str, value: str) -> tuple[str, ...]:
    """``polling,websocket`` or ``websocket``."""
    listed = items(name, value)
    if not listed or any(t not in ("polling", "websocket") for t in listed):
        raise ConfigError(f"{name} is {value!r}; use 'polling,websocket' or 'websocket'.")
    return listed


def room_list(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated ``prefix:id`` rooms; ``{userId}`` is replaced per socket."""
    listed = items(name, value)
    for template in listed:
        if not ROOM_TEMPLATE.fullmatch(template):
            raise ConfigError(
                f"{name} has {template!r}; each entry is prefix:id with a prefix among "
                "user, group, game, party, broadcast (ids: letters, digits, '_' or '-'; '{userId}' is replaced)."
            )
    return listed
