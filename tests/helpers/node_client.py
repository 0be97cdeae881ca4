"""Drive the real Node ``socket.io-client`` from pytest.

:class:`NodeClients` starts ``node tests/node/sioclient.js`` once and talks to
it over JSON lines: commands go to its stdin, results and server events come
back on its stdout and are appended to an in-memory log that tests can wait
on. One Node process manages any number of named client sockets.

The helper works with plain threads and under gevent monkey-patching alike:
all waiting is done on a :class:`threading.Condition` with timeouts.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "NODE_DIR",
    "NodeClientError",
    "NodeClients",
    "SIOCLIENT_JS",
    "ensure_node_modules",
]

logger = logging.getLogger(__name__)

#: Folder holding ``package.json``, the lock file and ``sioclient.js``.
NODE_DIR: Path = Path(__file__).resolve().parents[1] / "node"
#: The Node driver script.
SIOCLIENT_JS: Path = NODE_DIR / "sioclient.js"

_LOG_TAIL = 40
_ACK_GRACE = 2.0

Message = dict[str, Any]
Predicate = Callable[[Message], bool]

_install_lock = threading.Lock()


class NodeClientError(RuntimeError):
    """The Node driver reported an error for a command, or is not running."""


def ensure_node_modules() -> Path:
    """Install the Node dependencies of the driver if they are missing.

    Runs ``npm ci --no-audit --no-fund`` in :data:`NODE_DIR` when
    ``node_modules/socket.io-client`` does not exist there yet.

    :returns: the Node folder, :data:`NODE_DIR`.
    :raises NodeClientError: when ``npm`` is not on ``PATH`` or the install fails.
    """
    marker = NODE_DIR / "node_modules" / "socket.io-client" / "package.json"
    with _install_lock:
        if marker.is_file():
            return NODE_DIR
        npm = shutil.which("npm")
        if npm is None:
            raise NodeClientError("npm is not on PATH; cannot install tests/node dependencies")
        logger.info("installing Node dependencies in %s", NODE_DIR)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not marker.is_file():
            raise NodeClientError(
                f"npm ci failed in {NODE_DIR} (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
    return NODE_DIR


class NodeClients:
    """A running Node process that manages many named Socket.IO client sockets.

    Every line the driver prints is parsed and kept, in order, in a log of
    dicts (see :attr:`messages`). Message types include ``ready``,
    ``connect``, ``connect_error``, ``disconnect``, ``upgrade``,
    ``reconnect_attempt``, ``reconnect``, ``event``, ``ack``, ``ack_timeout``,
    ``emitted``, ``closed``, ``transport_closed``, ``reconnecting`` and ``error``.

    Use it as a context manager, or call :meth:`close` when done::

        with NodeClients() as nc:
            nc.connect("a", "http://127.0.0.1:5000", transports=["websocket"])
            assert nc.emit("a", "ping", {"x": 1}) == ["pong"]

    :param node: the ``node`` executable to run.
    :param install: run :func:`ensure_node_modules` first.
    :param start_timeout: seconds to wait for the driver's ``ready`` line.
    :raises NodeClientError: when the driver cannot be started.
    """

    def __init__(
        self,
        node: str = "node",
        *,
        install: bool = True,
        start_timeout: float = 15.0,
    ) -> None:
        if install:
            ensure_node_modules()
        node_path = shutil.which(node)
        if node_path is None:
            raise NodeClientError(f"{node!r} is not on PATH")
        self._messages: list[Message] = []
        self._cond = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._req_ids = itertools.count(1)
        self._eof = False
        self._closed = False
        self._proc: subprocess.Popen[str] = subprocess.Popen(
            [node_path, str(SIOCLIENT_JS)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._read_stdout, name="node-sioclient-stdout", daemon=True
        )
        self._stderr_reader = threading.Thread(
            target=self._read_stderr, name="node-sioclient-stderr", daemon=True
        )
        self._reader.start()
        self._stderr_reader.start()
        try:
            self.ready: Message = self.wait_for(
                lambda m: m.get("type") == "ready", timeout=start_timeout
            )
        except BaseException:
            self.close()
            raise
        logger.debug("node sioclient ready: %s", self.ready)

    # -- context manager ------------------------------------------------------

    def __enter__(self) -> NodeClients:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reader threads -------------------------------------------------------

    def _read_stdout(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            for line in stream:
                text = line.strip()
                if not text:
                    continue
                try:
                    message = json.loads(text)
                except ValueError:
                    logger.warning("node sioclient: unparsable stdout line: %r", text)
                    continue
                if not isinstance(message, dict):
                    logger.warning("node sioclient: non-object stdout line: %r", text)
                    continue
                logger.debug("node sioclient <- %s", text)
                with self._cond:
                    self._messages.append(message)
                    self._cond.notify_all()
        except (OSError, ValueError) as exc:
            logger.debug("node sioclient stdout reader stopped: %s", exc)
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        try:
            for line in stream:
                logger.debug("node sioclient stderr: %s", line.rstrip())
        except (OSError, ValueError) as exc:
            logger.debug("node sioclient stderr reader stopped: %s", exc)

    # -- low level ------------------------------------------------------------

    def _send(self, command: Mapping[str, Any]) -> None:
        """Write one command line to the driver.

        :param command: a JSON-serialisable command object.
        :raises NodeClientError: when the driver is no longer running.
        """
        line = json.dumps(command, separators=(",", ":"))
        stdin = self._proc.stdin
        if self._closed or stdin is None or self._proc.poll() is not None:
            raise NodeClientError(f"node sioclient is not running; cannot send {line}")
        logger.debug("node sioclient -> %s", line)
        with self._send_lock:
            try:
                stdin.write(line + "\n")
                stdin.flush()
            except (OSError, ValueError) as exc:
                raise NodeClientError(f"cannot send {line} to node sioclient: {exc}") from exc

    def _format_log(self, since: int = 0) -> str:
        with self._cond:
            tail = self._messages[since:]
        skipped = max(0, len(tail) - _LOG_TAIL)
        lines = [json.dumps(m, sort_keys=True) for m in tail[-_LOG_TAIL:]]
        head = f"... {skipped} earlier messages ...\n" if skipped else ""
        return head + ("\n".join(lines) if lines else "(no messages)")

    # -- log access -----------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """A snapshot of every message received so far, in order."""
        with self._cond:
            return list(self._messages)

    @property
    def returncode(self) -> int | None:
        """The driver's exit code, or ``None`` while it runs."""
        return self._proc.poll()

    def mark(self) -> int:
        """Return the current log length, to pass as ``since`` later.

        :returns: the index the next message will get.
        """
        with self._cond:
            return len(self._messages)

    def wait_for(self, predicate: Predicate, timeout: float = 5.0, since: int = 0) -> Message:
        """Wait for the first message matching ``predicate``.

        :param predicate: called with each message dict; must not block.
        :param timeout: seconds to wait at most.
        :param since: log index to start from (see :meth:`mark`); ``0`` scans
            the whole log.
        :returns: the first matching message at or after ``since``.
        :raises TimeoutError: when none arrives in time (the message holds the
            log received since ``since``).
        :raises NodeClientError: when the driver exits before a match.
        """
        deadline = time.monotonic() + timeout
        index = max(0, since)
        with self._cond:
            while True:
                while index < len(self._messages):
                    message = self._messages[index]
                    index += 1
                    if predicate(message):
                        return message
                if self._eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            eof = self._eof
        log = self._format_log(since)
        if eof:
            raise NodeClientError(
                f"node sioclient exited (code {self._proc.poll()}) before a matching "
                f"message arrived; log since {since}:\n{log}"
            )
        raise TimeoutError(f"no matching message within {timeout}s; log since {since}:\n{log}")

    def wait_event(
        self, id: str, event: str, timeout: float = 5.0, since: int | None = None
    ) -> Message:
        """Wait for a server event delivered to client ``id``.

        :param id: the client name.
        :param event: the event name.
        :param timeout: seconds to wait at most.
        :param since: log index to start from; ``None`` scans the whole log.
        :returns: the ``{"type": "event", ...}`` message; its ``args`` holds
            the event arguments.
        :raises TimeoutError: when none arrives in time.
        """
        return self.wait_for(
            lambda m: m.get("type") == "event" and m.get("id") == id and m.get("event") == event,
            timeout=timeout,
            since=since or 0,
        )

    def events(self, id: str, event: str) -> list[Message]:
        """Return the ``event`` messages received so far by client ``id``.

        :param id: the client name.
        :param event: the event name.
        :returns: a snapshot list of matching messages, oldest first.
        """
        with self._cond:
            return [
                m
                for m in self._messages
                if m.get("type") == "event" and m.get("id") == id and m.get("event") == event
            ]

    def of(self, id: str, types: Iterable[str] | None = None) -> list[Message]:
        """Return the messages about client ``id``, optionally of some types only.

        :param id: the client name.
        :param types: message types to keep; ``None`` keeps all.
        :returns: a snapshot list, oldest first.
        """
        wanted = None if types is None else set(types)
        with self._cond:
            return [
                m
                for m in self._messages
                if m.get("id") == id and (wanted is None or m.get("type") in wanted)
            ]

    # -- commands -------------------------------------------------------------

    def _command(self, command: Mapping[str, Any], done: Predicate, timeout: float) -> Message:
        """Send ``command`` and wait for its answer or a matching ``error``.

        :raises NodeClientError: when the driver answers with an error.
        :raises TimeoutError: when no answer arrives in time.
        """
        since = self.mark()
        self._send(command)
        req = command.get("req")
        cid = command.get("id")
        op = command.get("op")

        def match(m: Message) -> bool:
            if m.get("type") == "error":
                if req is not None:
                    return bool(m.get("req") == req)
                return bool(m.get("op") == op and m.get("id") == cid)
            return done(m)

        message = self.wait_for(match, timeout=timeout, since=since)
        if message.get("type") == "error":
            raise NodeClientError(f"{op} failed for {cid!r}: {message.get('message')}")
        return message

    def connect(
        self,
        id: str,
        url: str,
        auth: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        transports: list[str] | None = None,
        reconnection: bool = False,
        upgrade: bool = True,
        timeout: float = 10.0,
        options: Mapping[str, Any] | None = None,
    ) -> Message:
        """Create a new client socket named ``id`` (``io(url, {forceNew: true, ...})``).

        :param id: a name for the socket, unique among open sockets.
        :param url: the server URL, with an optional namespace path.
        :param auth: the ``auth`` payload sent with the Socket.IO CONNECT packet.
        :param query: query-string parameters for the handshake.
        :param headers: extra HTTP headers (``extraHeaders``).
        :param transports: e.g. ``["websocket"]`` or ``["polling", "websocket"]``;
            ``None`` keeps the client default.
        :param reconnection: let the client reconnect by itself.
        :param upgrade: let the client upgrade from polling to WebSocket.
        :param timeout: seconds to wait for the first connect or connect_error.
        :param options: further ``io()`` options (e.g. ``reconnectionDelay``),
            merged last.
        :returns: the first ``connect`` (with ``sid``, ``recovered``,
            ``transport``) or ``connect_error`` (with ``message``, ``data``)
            message for ``id``. ``transport`` is the engine transport at that
            moment: starting with polling, the WebSocket upgrade runs in
            parallel with the Socket.IO handshake and may finish first, so
            wait for the ``upgrade`` message (from a :meth:`mark` taken
            before connecting) rather than expect ``"polling"`` here.
        :raises TimeoutError: when neither arrives in time.
        :raises NodeClientError: when the driver rejects the command.
        """
        command: dict[str, Any] = {
            "op": "connect",
            "id": id,
            "url": url,
            "auth": dict(auth) if auth is not None else None,
            "query": dict(query) if query is not None else None,
            "extraHeaders": dict(headers) if headers is not None else None,
            "transports": list(transports) if transports is not None else None,
            "reconnection": reconnection,
            "upgrade": upgrade,
        }
        if options:
            command["options"] = dict(options)
        return self._command(
            command,
            lambda m: m.get("id") == id and m.get("type") in ("connect", "connect_error"),
            timeout,
        )

    def emit(
        self, id: str, event: str, *args: Any, ack: bool = True, timeout: float = 5.0
    ) -> list[Any] | None:
        """Emit ``event`` with ``args`` from client ``id``.

        :param id: the client name.
        :param event: the event name.
        :param args: JSON-serialisable event arguments.
        :param ack: ask the server for an acknowledgement and wait for it.
        :param timeout: seconds the client waits for the acknowledgement.
        :returns: the acknowledgement arguments as a list, or ``None`` when
            ``ack`` is false (the packet was handed to the client).
        :raises TimeoutError: when the acknowledgement times out or no answer
            arrives.
        :raises NodeClientError: when the driver rejects the command.
        """
        req = f"r{next(self._req_ids)}"
        command = {
            "op": "emit",
            "id": id,
            "event": event,
            "args": list(args),
            "ack": ack,
            "req": req,
            "timeout": int(timeout * 1000),
        }
        expected = ("ack", "ack_timeout") if ack else ("emitted",)
        message = self._command(
            command,
            lambda m: m.get("req") == req and m.get("id") == id and m.get("type") in expected,
            timeout + _ACK_GRACE,
        )
        if message["type"] == "ack_timeout":
            raise TimeoutError(
                f"no ack for {event!r} from client {id!r} within {timeout}s; log:\n"
                f"{self._format_log()}"
            )
        if message["type"] == "emitted":
            return None
        return list(message.get("args") or [])

    def ack_reply(self, id: str, ack_id: int, *args: Any, timeout: float = 5.0) -> None:
        """Answer a server event that was sent with a callback.

        Such events carry an ``ack_id`` key in their ``event`` message.

        :param id: the client name.
        :param ack_id: the ``ack_id`` of the event message.
        :param args: JSON-serialisable acknowledgement arguments.
        :param timeout: seconds to wait for the driver's confirmation.
        :raises NodeClientError: when the ``ack_id`` is unknown.
        """
        self._command(
            {"op": "ack_reply", "id": id, "ack_id": ack_id, "args": list(args)},
            lambda m: (
                m.get("type") == "replied" and m.get("id") == id and m.get("ack_id") == ack_id
            ),
            timeout,
        )

    def disconnect(self, id: str, timeout: float = 5.0) -> None:
        """Disconnect client ``id`` (``socket.disconnect()``) and forget it.

        :param id: the client name.
        :param timeout: seconds to wait for the driver's confirmation.
        :raises NodeClientError: when ``id`` is unknown.
        """
        self._command(
            {"op": "disconnect", "id": id},
            lambda m: m.get("type") == "closed" and m.get("id") == id,
            timeout,
        )

    def close_transport(self, id: str, timeout: float = 5.0) -> None:
        """Close the engine of client ``id`` as a network drop would.

        With ``reconnection=True`` the client then reconnects by itself.

        :param id: the client name.
        :param timeout: seconds to wait for the driver's confirmation.
        :raises NodeClientError: when ``id`` is unknown.
        """
        self._command(
            {"op": "close_transport", "id": id},
            lambda m: m.get("type") == "transport_closed" and m.get("id") == id,
            timeout,
        )

    def reconnect(self, id: str, timeout: float = 5.0) -> None:
        """Connect client ``id`` again (``socket.connect()``) after a drop it did not retry by itself.

        The client sends the ``pid`` and offset it holds, as its own reconnection would; wait for the
        ``connect`` or ``connect_error`` message (from a :meth:`mark` taken before) to see the outcome.

        :param id: the client name.
        :param timeout: seconds to wait for the driver's confirmation.
        :raises NodeClientError: when ``id`` is unknown or still connected.
        """
        self._command(
            {"op": "reconnect", "id": id},
            lambda m: m.get("type") == "reconnecting" and m.get("id") == id,
            timeout,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect every client and stop the driver; safe to call twice.

        :param timeout: seconds to wait for a clean exit before killing it.
        """
        if self._closed:
            return
        proc = self._proc
        if proc.poll() is None:
            try:
                self._send({"op": "exit"})
            except NodeClientError as exc:
                logger.debug("could not send exit: %s", exc)
        self._closed = True
        with self._send_lock:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError as exc:
                logger.debug("closing node stdin: %s", exc)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("node sioclient did not exit within %ss; killing it", timeout)
            proc.kill()
            proc.wait()
        self._reader.join(timeout=timeout)
        self._stderr_reader.join(timeout=timeout)
        for stream in (proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError as exc:
                logger.debug("closing node stream: %s", exc)
