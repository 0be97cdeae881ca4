"""The app's Redis client: the pool's per-checkout readiness check stays a single non-blocking peek."""
from __future__ import annotations

import _socket
import inspect

import gevent
import redis
from redis._parsers import _HiredisParser
from redis.connection import BlockingConnectionPool

from realtime.stores.redis.client import connect_redis


def test_the_pool_asks_can_read_on_every_checkout() -> None:
    """Why the fast can_read matters: redis-py checks each connection it hands out."""
    assert "can_read" in inspect.unwrap(BlockingConnectionPool.get_connection).__code__.co_names


def test_hiredis_is_the_parser_and_keeps_a_reader_with_has_data(redis_url: str) -> None:
    client = connect_redis(redis_url)
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
        assert hasattr(connection._parser._reader, "has_data")
        assert isinstance(connection._sock._sock, _socket.socket), "gevent's socket wraps the OS socket"
    finally:
        client.connection_pool.release(connection)


def test_can_read_tells_idle_from_pending_and_closed(redis_url: str) -> None:
    client = connect_redis(redis_url)
    connection = client.connection_pool.get_connection()
    try:
        assert connection.can_read() is False
        connection.send_command("PING")
        gevent.sleep(0.05)
        assert connection.can_read() is True
        assert connection.read_response() == "PONG"
        assert connection.can_read() is False
        connection.send_command("CLIENT", "ID")
        own_id = connection.read_response()
        client.client_kill_filter(_id=own_id)
        gevent.sleep(0.05)
        assert connection.can_read() is True, "a connection Redis closed must not be handed out as ready"
    finally:
        client.connection_pool.release(connection)


def test_a_connection_redis_closed_is_replaced_on_checkout(redis_url: str) -> None:
    client = connect_redis(redis_url)
    own_id = client.client_id()
    redis.Redis.from_url(redis_url).client_kill_filter(_id=own_id)
    gevent.sleep(0.05)

    assert client.ping() is True
    assert client.client_id() != own_id


def test_the_pool_hands_out_connections_without_redis_pys_deprecation_wrapper(redis_url: str) -> None:
    """What the wrapper does (a deprecation check of arguments this code never passes) and that it is gone."""
    wrapper = BlockingConnectionPool.get_connection
    assert wrapper is not inspect.unwrap(wrapper)
    assert {"_get_filterable_args", "_check_deprecated_args"} <= {*wrapper.__code__.co_names, *wrapper.__code__.co_freevars}
    client = connect_redis(redis_url)
    assert client.connection_pool.get_connection.__func__ is inspect.unwrap(wrapper)
    assert client.ping() is True
