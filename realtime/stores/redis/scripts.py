"""Load the Lua scripts shipped in ``lua/`` beside this module (shared fragments prepended, the key names of
``lua/keys_fn.lua`` first in every script), and call them the short way.

redis-py sends EVALSHA and, on NOSCRIPT, loads and retries: three round trips the first time. Each worker
preloads every script once when it starts serving, so socket events pay one.

A call outside a pipeline is one EVALSHA written on a pooled connection (:class:`StoredScript`), without
redis-py's command layers (argument re-encoding, response callbacks, per-command telemetry): they cost more
than the round trip itself on a busy worker (issue 9). The connection, its retry policy and its round-trip
count are redis-py's own. Calls made while several round trips are already in flight go together in the
next one (:mod:`.grouped_calls`).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hiredis
import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from realtime.stores.redis.grouped_calls import GroupedCalls

LUA_DIR = Path(__file__).resolve().parent / "lua"
#: The fragment every script starts with: the names of the keys a script finds only while it runs.
KEY_NAMES = "keys_fn"


class StoredScript:
    """A registered script: ``script(keys=[…], args=[…])`` runs it with EVALSHA and returns its reply.

    Given ``client`` (a pipeline), the call is redis-py's, queued in that pipeline. Arguments are ``str``,
    ``bytes``, ``int`` or ``float`` (redis-py's own path, with its errors, takes anything else).
    """

    __slots__ = ("_calls", "_client", "_script")

    def __init__(self, client: redis.Redis, script: Script, calls: GroupedCalls) -> None:
        self._client = client
        self._script = script
        self._calls = calls

    @property
    def script(self) -> str:
        """The script's source."""
        return str(self._script.script)

    @property
    def sha(self) -> str:
        """The SHA1 that EVALSHA names it by."""
        return str(self._script.sha)

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if client is not None:
            return self._script(keys=keys, args=args, client=client)
        try:
            command = hiredis.pack_command(("EVALSHA", self._script.sha, len(keys), *keys, *args))
        except TypeError:
            return self._script(keys=keys, args=args)
        try:
            return self._calls.call(command)
        except NoScriptError:
            # The server lost its scripts (a restart, SCRIPT FLUSH): load this one and send it again.
            self._client.script_load(self._script.script)
            return self._calls.call(command)


class ScriptSet:
    """The scripts one client uses, loadable in one pipeline."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._calls = GroupedCalls(client)
        self._scripts: list[StoredScript] = []

    def load(self, name: str, *fragments: str) -> StoredScript:
        """Register ``lua/{name}.lua`` with ``fragments`` (other files' functions) in front of it."""
        source = "\n".join((LUA_DIR / f"{part}.lua").read_text() for part in (KEY_NAMES, *fragments, name))
        script = StoredScript(self._client, self._client.register_script(source), self._calls)
        self._scripts.append(script)
        return script

    def preload(self) -> None:
        """SCRIPT LOAD every registered script (one round trip)."""
        if not self._scripts:
            return
        pipe = self._client.pipeline(transaction=False)
        for script in self._scripts:
            pipe.script_load(script.script)
        pipe.execute()
