"""Scripts called the short way (:class:`realtime.stores.redis.scripts.StoredScript`): the same replies,
errors, reloads and retries as redis-py's ``Script``, one round trip each."""
from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import DataError, ResponseError

from realtime.metrics.round_trips import counting
from realtime.stores.redis import scripts as scripts_module
from realtime.stores.redis.client import connect_redis
from realtime.stores.redis.scripts import ScriptSet

ECHO = """
if ARGV[1] == "fail" then
  return redis.error_reply("ERR asked to fail")
end
redis.call("SET", KEYS[1], ARGV[1])
return {KEYS[1], ARGV[1], #ARGV, ARGV[#ARGV]}
"""


@pytest.fixture
def lua_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / f"{scripts_module.KEY_NAMES}.lua").write_text("-- key names\n")
    (tmp_path / "echo.lua").write_text(textwrap.dedent(ECHO))
    monkeypatch.setattr(scripts_module, "LUA_DIR", tmp_path)
    return tmp_path


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = connect_redis(redis_url)
    yield connection
    connection.close()


def test_a_call_is_one_evalsha_with_redis_pys_reply(client: redis.Redis, lua_dir: Path) -> None:
    scripts = ScriptSet(client)
    echo = scripts.load("echo")
    scripts.preload()
    with counting() as trips:
        reply = echo(keys=["k:1"], args=["v", 2, 1.5])
    assert reply == ["k:1", "v", 3, "1.5"]
    assert trips.count == 1
    assert client.get("k:1") == "v"
    assert reply == client.register_script(echo.script)(keys=["k:1"], args=["v", 2, 1.5]), "as redis-py replies"


def test_an_error_reply_raises_and_leaves_the_connection_usable(client: redis.Redis, lua_dir: Path) -> None:
    echo = ScriptSet(client).load("echo")
    with pytest.raises(ResponseError, match="asked to fail"):
        echo(keys=["k:2"], args=["fail"])
    assert echo(keys=["k:2"], args=["ok"]) == ["k:2", "ok", 1, "ok"]
    assert client.ping() is True


def test_a_script_the_server_lost_is_loaded_again(client: redis.Redis, lua_dir: Path) -> None:
    scripts = ScriptSet(client)
    echo = scripts.load("echo")
    scripts.preload()
    client.script_flush()
    assert echo(keys=["k:3"], args=["again"]) == ["k:3", "again", 1, "again"]
    assert client.script_exists(echo.sha) == [True]


def test_a_connection_that_fails_mid_call_is_reconnected_and_the_call_retried(
    client: redis.Redis, lua_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo = ScriptSet(client).load("echo")
    echo(keys=["k:4"], args=["first"])
    pool = client.connection_pool
    checkout = pool.get_connection
    broken: list[int] = []

    def broken_once() -> object:
        connection = checkout()
        if not broken:
            broken.append(1)
            connection._sock.shutdown(socket.SHUT_RDWR)  # the link fails after the pool's readiness check
        return connection

    monkeypatch.setattr(pool, "get_connection", broken_once)
    assert echo(keys=["k:4"], args=["second"]) == ["k:4", "second", 1, "second"]
    assert broken == [1]
    assert client.get("k:4") == "second"


def test_arguments_redis_py_refuses_are_refused_the_same_way(client: redis.Redis, lua_dir: Path) -> None:
    echo = ScriptSet(client).load("echo")
    with pytest.raises(DataError):
        echo(keys=["k:5"], args=[True])
    with pytest.raises(DataError):
        echo(keys=["k:5"], args=[None])


def test_in_a_pipeline_the_call_is_queued_with_the_rest(client: redis.Redis, lua_dir: Path) -> None:
    echo = ScriptSet(client).load("echo")
    pipe = client.pipeline(transaction=False)
    echo(keys=["k:6"], args=["piped"], client=pipe)
    pipe.get("k:6")
    assert pipe.execute() == [["k:6", "piped", 1, "piped"], "piped"]
