"""Fixtures of the hostile-testing suite: servers A and B (the Procfile command) on the session's private
Redis, the real Node ``socket.io-client``, and a factory for clusters with their own settings.

A module changes the settings of its shared cluster by overriding the ``cluster_overrides`` fixture, and
asks for ``no_server_errors`` where the servers must log no error during a test.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack

import pytest
import redis

from tests.e2e_kit import Clients, Cluster, server_errors, start_cluster
from tests.node_client import NodeClients
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    """Settings of the module's cluster on top of :func:`tests.e2e_kit.server_env`."""
    return {}


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, cluster_overrides: dict[str, str | None]
) -> Iterator[Cluster]:
    """Servers A and B on the private Redis (emptied first)."""
    redis.Redis.from_url(redis_server.url).flushall()
    with start_cluster(redis_server.url, tmp_path_factory.mktemp("security"), cluster_overrides) as started:
        yield started


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> Iterator[NodeClients]:
    """One Node driver for the module, closed before the servers (so they stop at once on SIGTERM)."""
    with NodeClients() as driver:
        yield driver


@pytest.fixture
def clients(nodes: NodeClients, cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(nodes, cluster)
    yield opened
    opened.close_all()


@pytest.fixture
def no_server_errors(cluster: Cluster) -> Iterator[None]:
    """Servers A and B log nothing at ERROR level, and no traceback, during the test."""
    servers = (cluster.a, cluster.b)
    starts = {server.name: len(server.log_text()) for server in servers}
    yield
    assert not (errors := server_errors(servers, starts)), errors


@pytest.fixture
def spawn_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Cluster]]:
    """``spawn_cluster(overrides, redis_url=None)``: a further pair of servers for this test, stopped after it."""
    with ExitStack() as stack:

        def spawn(overrides: Mapping[str, str | None] | None = None, redis_url: str | None = None) -> Cluster:
            log_dir = tmp_path_factory.mktemp("security-own")
            return stack.enter_context(start_cluster(redis_url or redis_server.url, log_dir, overrides))

        yield spawn
