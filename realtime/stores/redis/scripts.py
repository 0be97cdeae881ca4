"""Load the Lua scripts shipped in ``lua/`` beside this module (shared fragments prepended, the key names of
``lua/keys_fn.lua`` first in every script).

redis-py sends EVALSHA and, on NOSCRIPT, loads and retries: three round trips the first time. Each worker
preloads every script once when it starts serving, so socket events pay one.
"""
from __future__ import annotations

from pathlib import Path

import redis
from redis.commands.core import Script

LUA_DIR = Path(__file__).resolve().parent / "lua"
#: The fragment every script starts with: the names of the keys a script finds only while it runs.
KEY_NAMES = "keys_fn"


class ScriptSet:
    """The scripts one client uses, loadable in one pipeline."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._scripts: list[Script] = []

    def load(self, name: str, *fragments: str) -> Script:
        """Register ``lua/{name}.lua`` with ``fragments`` (other files' functions) in front of it."""
        source = "\n".join((LUA_DIR / f"{part}.lua").read_text() for part in (KEY_NAMES, *fragments, name))
        script = self._client.register_script(source)
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
