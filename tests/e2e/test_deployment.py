"""The README's deployment chapter, run here as far as a machine without Heroku allows.

A fresh venv gets ``pip install -r requirements.txt`` and nothing else (the project is not installed: a dyno
runs it from the checkout); the Procfile's command from that venv serves a copy of the checkout with
``APP_ENV=prod`` on the private Redis. Two such processes on two ports are the chapter's two "dynos"; further
ones try ``WEB_CONCURRENCY`` with and without websocket-only mode, and a ``rediss://`` Redis with a self-signed
certificate (as Heroku Redis has); the chapter's nginx example, read from README.md with its ports replaced,
runs in front of the two dynos.
"""
from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import socketio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from packaging.utils import canonicalize_name

from tests.helpers.e2e_cluster import REPO_ROOT, build_env, group_members
from tests.helpers.e2e_kit import E2E_SECRET, ok, server_env, server_errors
from tests.helpers.node_client import NodeClients
from tests.helpers.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

#: What a fresh clone does not hold (see .gitignore), plus the Git folder itself.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
    ".ruff_cache",
)
#: The browser origin of the prod configuration (prod admits plain http only on localhost).
ORIGIN = "http://localhost:8080"
#: Loopback source addresses of the polling clients sent through nginx, which hashes on the client address:
#: enough that both processes get some (all of them on one process: a chance under 1 in 10^5).
POLLING_SOURCES = [f"127.0.0.{host}" for host in range(2, 26)]
#: The README example's placeholders and what the test puts there (nginx's port, the two dynos' ports).
NGINX_PLACEHOLDERS = ("listen 80;", "server 127.0.0.1:5000;", "server 127.0.0.1:5001;")


def run(*command: str | Path, cwd: Path, timeout: float = 180) -> str:
    """Run ``command`` without the test run's ``PYTHONPATH``; its stdout, or a failure showing both streams."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=build_env({"PYTHONPATH": None}), capture_output=True,
        text=True, timeout=timeout, check=False,
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def procfile_command() -> list[str]:
    """The ``web:`` command of the Procfile, split as a shell would."""
    (line,) = [line for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    return shlex.split(line.removeprefix("web:"))


@pytest.fixture(scope="module")
def dyno_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding ``requirements.txt`` alone, as the buildpack installs it (pip's cache is used)."""
    venv = tmp_path_factory.mktemp("dyno-venv")
    run(sys.executable, "-m", "venv", venv, cwd=venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "-r", REPO_ROOT / "requirements.txt", cwd=venv)
    return venv


@pytest.fixture(scope="module")
def slug(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app as a dyno holds it: a copy of the checkout without what a clone lacks."""
    folder = tmp_path_factory.mktemp("slug") / "app"
    shutil.copytree(REPO_ROOT, folder, ignore=NOT_IN_A_CLONE)
    return folder


@dataclass
class Dyno:
    """One process of the Procfile command from the fresh venv, in the slug."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_tail(self) -> str:
        return "\n".join(self.log_text().splitlines()[-60:])

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``/readyz`` answers 200 (Redis written, pub/sub probes heard); fail with the log tail."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/readyz", timeout=1.0, headers={"Connection": "close"}).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"dyno {self.name} not ready (exit code {self.process.poll()}); log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, as the platform does; SIGKILL the process group if it is still there after 15 s."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def prod_env(redis_server: RedisServer) -> dict[str, str]:
    """What the chapter sets on the dynos: ``APP_ENV=prod``, ``REDIS_URL``, ``JWT_SECRET``, ``ALLOWED_ORIGINS``."""
    return build_env(
        {**server_env(redis_server.url), "APP_ENV": "prod", "JWT_SECRET": E2E_SECRET, "ALLOWED_ORIGINS": ORIGIN,
         "PYTHONPATH": None, "PYTHONUNBUFFERED": "1"}
    )


@dataclass
class Platform:
    """Starts processes of the Procfile command as dynos: the fresh venv, the slug, the chapter's settings."""

    venv: Path
    slug: Path
    env: dict[str, str]
    logs: Path

    def spawn(self, name: str, **settings: str) -> Dyno:
        """One dyno on a free port, with ``settings`` on top of the shared ones (``heroku config:set``)."""
        executable, *arguments = procfile_command()
        port = free_port()
        runtime_dir = self.logs / f"run-{name}"
        runtime_dir.mkdir(mode=0o700)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as handle:
            process = subprocess.Popen(
                [str(self.venv / "bin" / executable), *arguments], cwd=self.slug,
                env={**self.env, **settings, "PORT": str(port), "XDG_RUNTIME_DIR": str(runtime_dir)},
                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return Dyno(name, port, process, log)


@pytest.fixture(scope="module")
def platform(
    dyno_venv: Path, slug: Path, prod_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Platform:
    return Platform(dyno_venv, slug, prod_env, tmp_path_factory.mktemp("dyno-logs"))


@pytest.fixture(scope="module")
def dynos(platform: Platform) -> Iterator[tuple[Dyno, Dyno]]:
    """``web.1`` and ``web.2``: the Procfile command on two free ports, one Redis."""
    started: list[Dyno] = []
    try:
        for name in ("web.1", "web.2"):
            started.append(platform.spawn(name))
        for dyno in started:
            dyno.wait_ready()
        yield started[0], started[1]
    finally:
        for dyno in started:
            dyno.stop()


@pytest.fixture
def quiet_dynos(dynos: tuple[Dyno, Dyno]) -> Iterator[tuple[Dyno, Dyno]]:
    """The dynos, which must log no error and no traceback during the test."""
    starts = {dyno.name: len(dyno.log_text()) for dyno in dynos}
    yield dynos
    assert not (errors := server_errors(dynos, starts)), errors  # type: ignore[arg-type]


def tokens(dyno_venv: Path, slug: Path, prod_env: dict[str, str], *users: str) -> list[str]:
    """``flask --app wsgi token create USERS`` from the fresh venv, in the slug, with the dynos' settings."""
    result = subprocess.run(
        [str(dyno_venv / "bin" / "flask"), "--app", "wsgi", "token", "create", *users], cwd=slug, env=prod_env,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_fresh_venv_holds_exactly_the_pinned_set_and_not_the_project(dyno_venv: Path) -> None:
    python = dyno_venv / "bin" / "python"
    frozen = run(python, "-m", "pip", "freeze", cwd=dyno_venv)
    installed = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in frozen.splitlines()}
    listed = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    pinned = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", listed, re.MULTILINE)
    }
    # pip installs what a pin needs but the file forgot, unpinned: the two sets differ then.
    assert installed == pinned
    run(python, "-m", "pip", "check", cwd=dyno_venv)
    found = run(python, "-c", "import importlib.util; print(importlib.util.find_spec('realtime'))", cwd=dyno_venv)
    assert found.strip() == "None"


def test_a_dyno_serves_health_readiness_and_a_chat_round_trip(
    quiet_dynos: tuple[Dyno, Dyno], dyno_venv: Path, slug: Path, prod_env: dict[str, str]
) -> None:
    web1, _ = quiet_dynos
    assert requests.get(f"{web1.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{web1.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["redis"] == "ok", ready.text
    suffix = uuid.uuid4().hex[:10]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    room = f"deploy-{suffix}"
    with NodeClients() as nodes:
        for name, token in zip((alice, bob), tokens(dyno_venv, slug, prod_env, alice, bob), strict=True):
            handshake = nodes.connect(name, web1.url, auth={"token": token}, headers={"Origin": ORIGIN})
            assert handshake["type"] == "connect", handshake
            assert ok(nodes.emit(name, "chat:join", {"roomId": room}))["roomId"] == room
        since = nodes.mark()
        sent = ok(nodes.emit(alice, "chat:message", {"roomId": room, "content": "from the dyno"}))
        received = nodes.wait_event(bob, "chat:new_message", since=since)["args"][0]
    assert received["id"] == sent["id"] and received["content"] == "from the dyno"


def test_two_dynos_on_one_redis_carry_a_message_across(
    quiet_dynos: tuple[Dyno, Dyno], dyno_venv: Path, slug: Path, prod_env: dict[str, str]
) -> None:
    suffix = uuid.uuid4().hex[:10]
    users = {f"u1-{suffix}": quiet_dynos[0], f"u2-{suffix}": quiet_dynos[1]}
    room = f"dynos-{suffix}"
    with NodeClients() as nodes:
        for (name, dyno), token in zip(users.items(), tokens(dyno_venv, slug, prod_env, *users), strict=True):
            handshake = nodes.connect(name, dyno.url, auth={"token": token}, headers={"Origin": ORIGIN})
            assert handshake["type"] == "connect", handshake
            ok(nodes.emit(name, "chat:join", {"roomId": room}))
        for sender, receiver in (list(users), list(users)[::-1]):
            since = nodes.mark()
            sent = ok(nodes.emit(sender, "chat:message", {"roomId": room, "content": f"from {sender}"}))
            # The receiver's own earlier message may still reach it after the mark: wait for this one by id.
            received = nodes.wait_for(
                lambda m, sent_id=sent["id"], to=receiver: m.get("id") == to and m.get("event") == "chat:new_message"
                and m["args"][0]["id"] == sent_id,
                since=since,
            )["args"][0]
            assert received["senderId"] == sender and received["content"] == f"from {sender}"


def workers_of(dyno: Dyno, expected: int) -> list[int]:
    """The worker pids under ``dyno``'s master once there are ``expected`` of them (bounded wait)."""
    deadline = time.monotonic() + 20
    while len(workers := [pid for pid in group_members(dyno.process.pid) if pid != dyno.process.pid]) != expected:
        assert time.monotonic() < deadline, f"{dyno.name} has workers {workers}, not {expected}:\n{dyno.log_tail()}"
        time.sleep(0.2)
    return workers


def test_several_workers_per_dyno_only_when_websocket_only(platform: Platform) -> None:
    # What the buildpack's WEB_CONCURRENCY does with the default transports, then the chapter's
    # `heroku config:set SOCKET_TRANSPORTS=websocket WEB_CONCURRENCY=4` (2 here: two cores).
    default = platform.spawn("web-default", WEB_CONCURRENCY="3")
    websocket_only = platform.spawn("web-ws", WEB_CONCURRENCY="2", SOCKET_TRANSPORTS="websocket")
    suffix = uuid.uuid4().hex[:8]
    users = [f"w{index}-{suffix}" for index in range(6)]
    room = f"workers-{suffix}"
    try:
        default.wait_ready()
        websocket_only.wait_ready()
        assert len(workers_of(default, 1)) == 1
        assert "WEB_CONCURRENCY=3 ignored" in default.log_text()
        assert len(workers_of(websocket_only, 2)) == 2
        polling = requests.get(
            f"{websocket_only.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": ORIGIN}, timeout=5
        )
        assert polling.status_code == 400, polling.text
        with NodeClients() as nodes:
            for user, token in zip(users, tokens(platform.venv, platform.slug, platform.env, *users), strict=True):
                handshake = nodes.connect(
                    user, websocket_only.url, auth={"token": token}, headers={"Origin": ORIGIN},
                    transports=["websocket"],
                )
                assert handshake["type"] == "connect", handshake
                ok(nodes.emit(user, "chat:join", {"roomId": room}))
            since = nodes.mark()
            sent = ok(nodes.emit(users[0], "chat:message", {"roomId": room, "content": "to every worker"}))
            # Whichever worker each socket landed on (the kernel picks), the message reaches every one.
            for user in users[1:]:
                assert nodes.wait_event(user, "chat:new_message", since=since)["args"][0]["id"] == sent["id"]
    finally:
        default.stop()
        websocket_only.stop()
    assert not (errors := server_errors((default, websocket_only), {"web-default": 0, "web-ws": 0})), errors  # type: ignore[arg-type]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate signed by its own key, as Heroku Redis presents one: ``(certificate, key)`` PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis.internal")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    (folder / "redis.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "redis.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "redis.crt", folder / "redis.key"


def test_a_redis_with_a_self_signed_certificate_needs_the_url_suffix(
    platform: Platform, tmp_path: Path
) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    tls_port = free_port()
    server = RedisServer(
        args=["--tls-port", str(tls_port), "--tls-cert-file", str(certificate), "--tls-key-file", str(key),
              "--tls-auth-clients", "no"]
    ).start()
    url = f"rediss://127.0.0.1:{tls_port}/0"
    verifying = platform.spawn("web-tls-verify", REDIS_URL=url)
    accepting = platform.spawn("web-tls", REDIS_URL=url, REDIS_TLS_VERIFY="false")
    suffix = uuid.uuid4().hex[:8]
    users = [f"t1-{suffix}", f"t2-{suffix}"]
    try:
        accepting.wait_ready()
        minted = tokens(
            platform.venv, platform.slug, {**platform.env, "REDIS_URL": url, "REDIS_TLS_VERIFY": "false"}, *users
        )
        with NodeClients() as nodes:
            for user, token in zip(users, minted, strict=True):
                handshake = nodes.connect(
                    user, accepting.url, auth={"token": token}, headers={"Origin": ORIGIN}, transports=["websocket"]
                )
                assert handshake["type"] == "connect", handshake
                ok(nodes.emit(user, "chat:join", {"roomId": f"tls-{suffix}"}))
            since = nodes.mark()
            sent = ok(nodes.emit(users[0], "chat:message", {"roomId": f"tls-{suffix}", "content": "over TLS"}))
            assert nodes.wait_event(users[1], "chat:new_message", since=since)["args"][0]["id"] == sent["id"]
        # Without the suffix the dyno serves HTTP but never reaches Redis: redis-py refuses the certificate.
        deadline = time.monotonic() + 30
        while not _answers(f"{verifying.url}/healthz"):
            assert verifying.process.poll() is None and time.monotonic() < deadline, verifying.log_tail()
            time.sleep(0.2)
        readiness = requests.get(f"{verifying.url}/readyz", timeout=10)
        assert (readiness.status_code, readiness.json()["redis"]) == (503, "unreachable"), readiness.text
    finally:
        verifying.stop()
        accepting.stop()
        server.stop()
    assert not (errors := server_errors((accepting,), {accepting.name: 0})), errors  # type: ignore[arg-type]


def readme_nginx_example() -> str:
    """The ``nginx`` code block of README.md's "Deploying" chapter."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Deploying\n")
    chapter = text[start : text.index("\n## ", start)]
    (block,) = re.findall(r"```nginx\n(.*?)```", chapter, re.DOTALL)
    return block


@dataclass
class Proxy:
    """nginx in front of the dynos: its URL and its access log (client address, upstream, status, request)."""

    url: str
    access_log: Path

    def upstreams_by_session(self) -> dict[str, set[str]]:
        """Engine.IO session id -> the upstreams its requests reached."""
        sessions: dict[str, set[str]] = {}
        for line in self.access_log.read_text(encoding="utf-8").splitlines():
            _, upstream, _, request = line.split(" ", 3)
            if match := re.search(r"[?&]sid=([^& ]+)", request):
                sessions.setdefault(match.group(1), set()).add(upstream)
        return sessions


@pytest.fixture(scope="module")
def nginx(dynos: tuple[Dyno, Dyno], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The README's nginx example, ports replaced, inside a minimal main config of a private nginx."""
    # Debian puts it in /usr/sbin, which a non-root PATH often lacks.
    binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        pytest.fail("nginx is not installed: `make tools` installs it (apt-get install nginx)")
    port = free_port()
    block = readme_nginx_example()
    replacements = (f"listen 127.0.0.1:{port};", *(f"server 127.0.0.1:{dyno.port};" for dyno in dynos))
    for placeholder, value in zip(NGINX_PLACEHOLDERS, replacements, strict=True):
        assert block.count(placeholder) == 1, f"README's nginx example should hold {placeholder!r} once"
        block = block.replace(placeholder, value)
    folder = tmp_path_factory.mktemp("nginx")
    paths = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would switch to an account that cannot enter pytest's private tmp folders.
    user = "user root;" if os.geteuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(
        f"{user}\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} notice;\n"
        f"events {{ worker_connections 512; }}\nhttp {{\n"
        f"    log_format upstreams '$remote_addr $upstream_addr $status \"$request\"';\n"
        f"    access_log {folder / 'access.log'} upstreams;\n{paths}\n{block}}}\n"
    )
    command = [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)]
    run(*command, "-t", cwd=folder)
    with open(folder / "nginx.out", "ab") as handle:
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"], cwd=folder, stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while not _answers(f"{url}/healthz"):
            assert process.poll() is None and time.monotonic() < deadline, (folder / "error.log").read_text()
            time.sleep(0.1)
        yield Proxy(url, folder / "access.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1.0, headers={"Connection": "close"}).status_code == 200
    except requests.RequestException:
        return False


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connections from one local address: nginx sees each polling client as a different machine."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def test_nginx_example_keeps_polling_clients_on_one_process_and_passes_websockets(
    nginx: Proxy, quiet_dynos: tuple[Dyno, Dyno], dyno_venv: Path, slug: Path, prod_env: dict[str, str]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    pollers = [f"poll{index}-{suffix}" for index in range(len(POLLING_SOURCES))]
    watcher = f"ws-{suffix}"
    room = f"nginx-{suffix}"
    minted = dict(zip([*pollers, watcher], tokens(dyno_venv, slug, prod_env, *pollers, watcher), strict=True))
    with NodeClients() as nodes:
        handshake = nodes.connect(
            watcher, nginx.url, auth={"token": minted[watcher]}, headers={"Origin": ORIGIN}, transports=["websocket"]
        )
        assert handshake["type"] == "connect" and handshake["transport"] == "websocket", handshake
        ok(nodes.emit(watcher, "chat:join", {"roomId": room}))
        sent: list[str] = []
        for user, source in zip(pollers, POLLING_SOURCES, strict=True):
            session = requests.Session()
            session.mount("http://", SourceAddressAdapter(source))
            client = socketio.Client(http_session=session, reconnection=False)
            # Each poll and each emit is its own HTTP request: any that reached the other process would find
            # no session there (400) and break the connect or the acks below.
            client.connect(
                nginx.url, auth={"token": minted[user]}, headers={"Origin": ORIGIN}, transports=["polling"],
                wait_timeout=10,
            )
            try:
                assert ok([client.call("chat:join", {"roomId": room}, timeout=10)])["roomId"] == room
                sent.append(ok([client.call("chat:message", {"roomId": room, "content": user}, timeout=10)])["id"])
            finally:
                client.disconnect()
        # Every message reaches the WebSocket client, from whichever process its sender was on.
        # One channel carries them all in publish order: the last one arriving means the others have.
        nodes.wait_for(
            lambda m: m.get("id") == watcher and m.get("event") == "chat:new_message" and m["args"][0]["id"] == sent[-1],
            timeout=10,
        )
        received = [event["args"][0]["id"] for event in nodes.events(watcher, "chat:new_message")]
    assert sorted(received) == sorted(sent)
    sessions = nginx.upstreams_by_session()
    assert len(sessions) >= len(pollers) and all(len(upstreams) == 1 for upstreams in sessions.values()), sessions
    assert len(set().union(*sessions.values())) == 2, f"all clients went to one process: {sessions}"
