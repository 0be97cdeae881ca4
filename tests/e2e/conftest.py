"""Fixtures of the end-to-end suite: servers A and B (the Procfile command) on the session's private Redis,
the real Node ``socket.io-client``, and factories for further servers and clusters.

``embedded_server`` is one server on the embedded default (no Redis), as ``make run`` starts it.

A module changes the settings of its shared cluster by overriding the ``cluster_overrides`` fixture, its Redis
by overriding ``cluster_redis``, how its
servers are brought up by overriding ``cluster_warm_up``, paces its sockets under the rate limit by overriding
``client_pace``, and asks for ``no_server_errors`` where the servers must log no error during a test
(``pytestmark = pytest.mark.usefixtures("no_server_errors")`` for all of them).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack

import pytest
import redis

from tests.helpers.e2e_cluster import GunicornProcess
from tests.helpers.e2e_kit import (
    Clients,
    Cluster,
    WarmUp,
    embedded_env,
    free_port_except,
    server_errors,
    start_cluster,
    wait_healthy,
)
from tests.helpers.node_client import NodeClients
from tests.helpers.redis_server import RedisServer


@pytest.fixture(scope="module")
def cluster_overrides() -> dict[str, str | None]:
    """Settings of the module's cluster on top of :func:`tests.helpers.e2e_kit.server_env`."""
    return {}


@pytest.fixture(scope="module")
def cluster_warm_up() -> WarmUp:
    """What makes a freshly spawned server of the module ready for its tests: a healthy ``/healthz``."""
    return wait_healthy


@pytest.fixture(scope="module")
def client_pace() -> tuple[float, float] | None:
    """``(rate, burst)`` under which the module's sockets pace their emits; ``None``: no pacing."""
    return None


@pytest.fixture(scope="module")
def cluster_redis(redis_server: RedisServer) -> RedisServer:
    """The Redis of the module's cluster: the session's private one."""
    return redis_server


@pytest.fixture(scope="module")
def cluster(
    cluster_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    cluster_overrides: dict[str, str | None],
    cluster_warm_up: WarmUp,
) -> Iterator[Cluster]:
    """Servers A and B on the private Redis (emptied first)."""
    redis.Redis.from_url(cluster_redis.url).flushall()
    log_dir = tmp_path_factory.mktemp("e2e")
    with start_cluster(cluster_redis.url, log_dir, cluster_overrides, warm_up=cluster_warm_up) as started:
        yield started


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> Iterator[NodeClients]:
    """One Node driver for the module.

    It depends on ``cluster`` so that it is closed first: with no client connection left (Node keeps
    polling connections alive), the workers exit at once on SIGTERM instead of after GRACEFUL_TIMEOUT.
    """
    with NodeClients() as driver:
        yield driver


@pytest.fixture
def clients(nodes: NodeClients, cluster: Cluster, client_pace: tuple[float, float] | None) -> Iterator[Clients]:
    opened = Clients(nodes, cluster, client_pace)
    yield opened
    opened.close_all()


@pytest.fixture
def no_server_errors(cluster: Cluster) -> Iterator[None]:
    """Servers A and B log nothing at ERROR level, and no traceback, during the test."""
    starts = {server.name: len(server.log_text()) for server in cluster.servers}
    yield
    assert not (errors := server_errors(cluster.servers, starts)), errors


@pytest.fixture
def extra_servers(cluster: Cluster, cluster_warm_up: WarmUp) -> Iterator[Callable[..., GunicornProcess]]:
    """``extra_servers(name, port=None, env=None, spawn_only=False, warm=True)``: a further server for this
    test only (the cluster's settings and Redis unless ``env`` says otherwise), stopped after it.

    It is warmed up like the cluster's servers, only checked healthy with ``warm=False``, and merely spawned
    with ``spawn_only=True``.
    """
    started: list[GunicornProcess] = []

    def start(
        name: str,
        port: int | None = None,
        env: dict[str, str | None] | None = None,
        spawn_only: bool = False,
        warm: bool = True,
    ) -> GunicornProcess:
        port = port or free_port_except(cluster.a.port, cluster.b.port, *(s.port for s in started))
        server = GunicornProcess(port, env or cluster.env, cluster.log_dir, name=name)
        started.append(server)
        server.spawn()
        if not spawn_only:
            (cluster_warm_up if warm else wait_healthy)((server,))
        return server

    yield start
    for server in started:
        server.terminate()
    for server in started:
        server.stop(timeout=12)


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornProcess]:
    """The Procfile command on the embedded default (no Redis), like ``make run``."""
    log_dir = tmp_path_factory.mktemp("embedded")
    with GunicornProcess(free_port_except(), embedded_env(), log_dir, name="embedded") as server:
        yield server


@pytest.fixture
def spawn_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Cluster]]:
    """``spawn_cluster(overrides, redis_url=None)``: a further pair of servers for this test, stopped after it."""
    with ExitStack() as stack:

        def spawn(overrides: Mapping[str, str | None] | None = None, redis_url: str | None = None) -> Cluster:
            log_dir = tmp_path_factory.mktemp("e2e-own")
            return stack.enter_context(start_cluster(redis_url or redis_server.url, log_dir, overrides))

        yield spawn
