"""A built wheel is the whole product: the package, its templates, static files and Lua scripts.

Built the way a release is (an sdist of a clean copy of the checkout, then a wheel from that sdist, with the
setuptools of the venv running the tests: no network), installed without dependencies into a scratch venv
that borrows the test venv's site-packages for them (listed after its own, so ``realtime`` is the wheel's,
never the checkout's editable install), then served as a deploy does: ``wsgi.py`` and ``gunicorn.conf.py``
copied to a folder outside the checkout, gunicorn started there on the private Redis.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zipfile import ZipFile

import pytest
import requests

from tests.helpers.e2e_cluster import REPO_ROOT, build_env
from tests.helpers.e2e_kit import ok, server_env
from tests.helpers.node_client import NodeClients
from tests.helpers.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

#: What a fresh clone does not hold (see .gitignore), plus the Git folder itself.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
    ".ruff_cache",
)
#: The files a deploy keeps beside the installed package.
DEPLOY_FILES = ("wsgi.py", "gunicorn.conf.py")


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command`` (by default with this environment less ``PYTHONPATH``); its stdout, or a failure that
    shows both streams."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env or build_env({"PYTHONPATH": None}), capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel: sdist of a clean copy of the checkout, then ``pip wheel`` of that sdist."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_IN_A_CLONE)
    run(sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(work / 'sdist')!r})",
        cwd=source)
    (sdist,) = (work / "sdist").glob("realtime-*.tar.gz")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work / "dist", sdist,
        cwd=work)
    (built,) = (work / "dist").glob("realtime-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch venv holding the wheel; the test venv's site-packages come after its own, for the dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=venv)
    site_packages = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv).strip())
    # A path line in a .pth file is appended to sys.path; the .pth files inside that folder (the checkout's
    # editable-install finder among them) are not run.
    (site_packages / "zz_test_venv_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deploy's folder outside the checkout: the WSGI entry point and the gunicorn settings, nothing else."""
    folder = tmp_path_factory.mktemp("deploy")
    for name in DEPLOY_FILES:
        shutil.copy(REPO_ROOT / name, folder / name)
    return folder


@dataclass
class Served:
    """The wheel's app under gunicorn: its URL and the environment of its processes (the CLI's too)."""

    url: str
    env: dict[str, str]
    python: Path
    folder: Path

    def flask(self, *args: str) -> str:
        """Run ``python -m flask --app wsgi ARGS`` of the scratch venv in the deploy folder."""
        return run(self.python, "-m", "flask", "--app", "wsgi", *args, cwd=self.folder, env=self.env)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master; SIGKILL its process group if it is still there after 15 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Wait until ``GET /healthz`` answers 200; fail with the log tail when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1.0, headers={"Connection": "close"}).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-60:])
    pytest.fail(f"gunicorn from the wheel did not become healthy (exit code {process.poll()}); log tail:\n{tail}")


@pytest.fixture(scope="module")
def served(
    venv_python: Path, deploy_dir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``python -m gunicorn -c gunicorn.conf.py wsgi:app`` of the scratch venv, in the deploy folder, on Redis."""
    port = free_port()
    runtime_dir = tmp_path_factory.mktemp("runtime")
    runtime_dir.chmod(0o700)
    env = build_env(
        {**server_env(redis_server.url), "PORT": str(port), "XDG_RUNTIME_DIR": str(runtime_dir),
         "PYTHONPATH": None, "PYTHONUNBUFFERED": "1"}
    )
    log = deploy_dir / "gunicorn.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [str(venv_python), "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=deploy_dir, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        yield Served(url, env, venv_python, deploy_dir)
    finally:
        stop(process)


def test_wheel_carries_every_module_template_static_file_and_lua_script(wheel: Path) -> None:
    package = REPO_ROOT / "realtime"
    expected = {
        f"realtime/{path.relative_to(package).as_posix()}"
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    expected |= {f"realtime/templates/{path.name}" for path in (REPO_ROOT / "templates").iterdir() if path.is_file()}
    assert any(name.endswith(".lua") for name in expected) and "realtime/templates/index.html" in expected
    with ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("realtime/")}
    assert not (missing := sorted(expected - shipped)), f"the wheel lacks {missing}"


def test_realtime_is_imported_from_the_installed_wheel(venv_python: Path, deploy_dir: Path) -> None:
    location = run(venv_python, "-c", "import realtime; print(realtime.__file__)", cwd=deploy_dir).strip()
    assert Path(location).is_relative_to(venv_python.parent.parent), location
    assert not Path(location).is_relative_to(REPO_ROOT), location


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/", "<title>realtime · demo chat</title>"),
        ("/ws-docs", 'data-event="chat:message"'),
    ],
    ids=["demo page", "event catalogue"],
)
def test_page_and_every_asset_it_links_are_served(served: Served, path: str, marker: str) -> None:
    page = requests.get(f"{served.url}{path}", timeout=5)
    assert page.status_code == 200
    assert marker in page.text
    assets = re.findall(r'(?:src|href)="(/[^"]*static/[^"]+)"', page.text)
    assert {"css", "js"} <= {asset.rsplit(".", 1)[-1] for asset in assets}, assets
    assert any(asset.endswith("/vendor/socket.io.min.js") for asset in assets), assets
    for asset in assets:
        response = requests.get(f"{served.url}{asset}", timeout=5)
        assert response.status_code == 200 and response.content, asset


def test_chat_round_trip_on_redis(served: Served) -> None:
    suffix = uuid.uuid4().hex[:10]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    alice_token, bob_token = served.flask("token", "create", alice, bob).split()
    room = f"wheel-{suffix}"
    with NodeClients() as nodes:
        for name, token in ((alice, alice_token), (bob, bob_token)):
            handshake = nodes.connect(name, served.url, auth={"token": token}, transports=["websocket"])
            assert handshake["type"] == "connect", handshake
            assert ok(nodes.emit(name, "chat:join", {"roomId": room}))["roomId"] == room
        since = nodes.mark()
        sent = ok(nodes.emit(alice, "chat:message", {"roomId": room, "content": "from the wheel"}))
        received = nodes.wait_event(bob, "chat:new_message", since=since)["args"][0]
    assert received["id"] == sent["id"]
    assert received["senderId"] == alice and received["content"] == "from the wheel"
