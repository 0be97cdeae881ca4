"""gunicorn settings: the Procfile's command, the tests' and ``make run``'s (one config everywhere)."""
import os
import signal

_transports = [t.strip() for t in os.environ.get("SOCKET_TRANSPORTS", "polling,websocket").split(",") if t.strip()]
_websocket_only = _transports == ["websocket"]
_requested_workers = int(os.environ.get("WEB_CONCURRENCY", "1"))

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# python-engineio needs gevent-websocket's worker to see WebSocket upgrades.
worker_class = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
# Without sticky sessions, long-polling requests of one client may hit different workers:
# several workers per process only work when clients are websocket-only.
workers = _requested_workers if _websocket_only else 1
# Each socket holds one greenlet-served connection; the default of 1000 refuses the 1001st.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "20000"))
# Heroku sends SIGTERM and waits 30 s before SIGKILL; on SIGTERM each worker drains its sockets (see
# post_worker_init) and exits within SHUTDOWN_TIMEOUT.
_shutdown_timeout = float(os.environ.get("SHUTDOWN_TIMEOUT", "10"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", str(int(_shutdown_timeout))))
timeout = 60
# gunicorn's `keepalive` does not apply to its gevent pywsgi workers: HANDSHAKE_TIMEOUT (an app setting, see
# post_worker_init) bounds each request head, idle keep-alive time before the next request included.
preload_app = False
# The gevent-websocket worker writes one line per request through the `geventwebsocket.handler` logger
# (the app's redacting handler scrubs ?token=...); gunicorn's own access log would never fire for it.
errorlog = "-"
# gunicorn >= 25 opens a control socket at one fixed per-user path; several masters on one host (tests,
# a second dyno process) would fight over it, and a dyno has no use for it.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Explain a refused WEB_CONCURRENCY before the workers start."""
    if _requested_workers > 1 and not _websocket_only:
        server.log.warning(
            "WEB_CONCURRENCY=%d ignored: several workers in one process need SOCKET_TRANSPORTS=websocket "
            "(long-polling has no sticky sessions); running 1 worker.",
            _requested_workers,
        )


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Bound request heads by HANDSHAKE_TIMEOUT; on SIGTERM, drain sockets (clients reconnect elsewhere and
    recover) instead of waiting on them."""
    import gevent

    from realtime.sockets.transport_guards import install_head_deadline

    app = worker.wsgi
    # Runs before the worker serves: its connections are read by a handler with a deadline on each head.
    install_head_deadline(worker, app.extensions["realtime"].settings.handshake_timeout)
    lifecycle = app.extensions["realtime"].lifecycle
    original = worker.handle_exit

    def listeners_closed():  # noqa: ANN202
        # The gevent worker's listeners are plain (gevent) sockets: closed ones report fileno() == -1.
        return all(listener.fileno() == -1 for listener in worker.sockets)

    def handle_exit(sig, frame):  # noqa: ANN001, ANN202
        original(sig, frame)
        gevent.spawn(lifecycle.drain, max(1.0, _shutdown_timeout - 2), listeners_closed)

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)


def when_ready(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Say where to point a browser."""
    port = os.environ.get("PORT", "5000")
    server.log.info("realtime serving on http://127.0.0.1:%s (health: /healthz, readiness: /readyz)", port)
