"""gunicorn settings: the Procfile's command, the tests' and ``make run``'s (one config everywhere)."""
import os
import shutil
import signal
import tempfile

from realtime.log_setup import gunicorn_logconfig

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
# The master's and workers' own lines in the app's format (LOG_FORMAT=json: one JSON object per line), scrubbed.
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT", "text").strip().lower(), loglevel)


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Explain a refused WEB_CONCURRENCY before the workers start; give the workers a metrics directory."""
    _prepare_metrics_directory()
    if _requested_workers > 1 and not _websocket_only:
        server.log.warning(
            "WEB_CONCURRENCY=%d ignored: several workers in one process need SOCKET_TRANSPORTS=websocket "
            "(long-polling has no sticky sessions); running 1 worker.",
            _requested_workers,
        )


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Bound request heads by HANDSHAKE_TIMEOUT; on SIGTERM, drain sockets (clients reconnect elsewhere and
    recover) instead of waiting on them; cut what each idle socket costs (realtime/sockets/idle_sockets.py)."""
    import gevent

    from realtime.sockets.collector import FullCollectionPacing
    from realtime.sockets.idle_sockets import stop_tracking_greenlet_tree, tune_collector, with_small_read_buffer
    from realtime.sockets.library_hooks import install_ping_timers
    from realtime.sockets.transport_guards import install_head_deadline
    from realtime.sockets.websocket_handover import HandOffHandler

    app = worker.wsgi
    # Runs before the worker serves: its connections are read by a handler with a deadline on each head.
    # Its websockets are handed over to the hub once open (realtime/sockets/websocket_handover.py).
    install_head_deadline(worker, app.extensions["realtime"].settings.handshake_timeout, HandOffHandler)
    worker.wsgi_handler = with_small_read_buffer(worker.wsgi_handler)
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
    install_ping_timers()
    stop_tracking_greenlet_tree()
    # Last: what the app built at start-up is frozen out of the collector's view, and so is what survives
    # each full collection after it (realtime/sockets/collector.py).
    tune_collector()
    FullCollectionPacing(app.extensions["realtime"].settings.gc_rescan_interval).install()


def when_ready(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Say where to point a browser."""
    port = os.environ.get("PORT", "5000")
    server.log.info("realtime serving on http://127.0.0.1:%s (health: /healthz, readiness: /readyz)", port)


#: The prometheus_client multiprocess directory this master created (removed again on exit), if any.
_owned_metrics_directory = []


def _prepare_metrics_directory():  # noqa: ANN202
    """Set PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client, with no stale files in it.

    Each worker writes its metric values to files there and /metrics sums them, whichever worker answers.
    Unset, this master gets a private directory (two masters on one host must not share one: each wipes it
    at start).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = tempfile.mkdtemp(prefix="realtime-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        _owned_metrics_directory.append(directory)
    os.makedirs(directory, exist_ok=True)
    # Files of a previous run's workers would be summed into this run's counters.
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Drop a dead worker's live gauges (connected sockets) from the sums; its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Remove the metrics directory this master created."""
    for directory in _owned_metrics_directory:
        shutil.rmtree(directory, ignore_errors=True)
