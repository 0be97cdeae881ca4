"""realtime: a production Socket.IO server on Flask-SocketIO, gevent and Redis."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from realtime.config import Settings, load_settings
from realtime.flask_app import RealtimeFlask
from realtime.log_setup import ClientFaultFilter, configure_logging

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent
# A built wheel carries the top-level templates/ inside the package (setup.cfg package_dir); a checkout has them beside it.
TEMPLATES = _PACKAGE / "templates" if (_PACKAGE / "templates").is_dir() else _PACKAGE.parent / "templates"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: settings, logging, services, socket handlers and HTTP routes.

    :param config: overrides by variable name (``{"REDIS_URL": ...}``), applied after the environment.
    :raises realtime.config.ConfigError: when a setting is missing or unsafe.
    """
    settings = load_settings(config)
    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.warnings:
        logger.warning(warning)

    app = RealtimeFlask(__name__, template_folder=str(TEMPLATES))
    app.config.update(REALTIME_SETTINGS=settings)

    from realtime import cli
    from realtime.cluster import recent_errors
    from realtime.docs.registry import EventRegistry
    from realtime.extensions import socketio
    from realtime.features import BLUEPRINTS
    from realtime.http import api, health, limits, metrics
    from realtime.services.factory import build_services
    from realtime.sockets.catalog import EventCatalog
    from realtime.sockets.connect import register_connection_handlers
    from realtime.sockets.dispatch import register_handlers
    from realtime.sockets.library_hooks import install, install_transport_guards
    from realtime.stores.redis.checks import warn_if_keys_can_be_evicted

    # First of the request hooks: an oversized body is refused before anything else runs.
    limits.init_app(app, settings.max_payload_bytes)
    catalog = EventCatalog(BLUEPRINTS)
    # Built at start-up, so an undocumented handler or response event stops the process.
    app.extensions["realtime_docs"] = EventRegistry(catalog)
    services = build_services(settings, socketio, catalog)
    app.extensions["realtime"] = services
    # Before the eviction check below, so its warning is among the recent errors too.
    recent_errors.install(services.redis, settings.key_prefix)
    # Each worker, at start-up: an eviction policy other than noeviction silently drops sessions and state.
    warn_if_keys_can_be_evicted(settings.redis_url)
    _init_socketio(app, settings, socketio, services.broadcaster.manager)
    install(
        socketio.server, app, settings.max_outbound_queue, settings.max_concurrent_handshakes,
        connect_timeout=settings.connect_timeout,
    )
    install_transport_guards(2 * settings.max_payload_bytes)
    register_connection_handlers(app, socketio)
    register_handlers(app, socketio, catalog)
    app.before_request(services.lifecycle.ensure_started)

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    # The event label of every metric takes only documented names (bounded cardinality).
    metrics.init_app(app, [*catalog.handlers, *catalog.server_events])
    if settings.app_env != "prod":
        from realtime.http import demo

        app.register_blueprint(demo.bp)
    if settings.ws_docs_enabled:
        from realtime.http import ws_docs

        app.register_blueprint(ws_docs.bp)
    if settings.admin_enabled:
        from realtime.http import admin

        admin.init_app(app, services, socketio)
    cli.init_app(app)
    return app


def _library_logger(name: str) -> logging.Logger:
    """A transport library's logger at WARNING, propagating to our handler; a client's bad request is a
    WARNING there, not an ERROR (:class:`realtime.log_setup.ClientFaultFilter`)."""
    library = logging.getLogger(name)
    library.setLevel(logging.WARNING)
    if not any(isinstance(existing, ClientFaultFilter) for existing in library.filters):
        library.addFilter(ClientFaultFilter())
    return library


def _init_socketio(app: Flask, settings: Settings, socketio: Any, client_manager: Any) -> None:
    from realtime.sockets import packet_json

    # Flask-SocketIO keeps server_options across init_app calls; the fan-out manager (which carries the
    # message queue and its channel) is this app's own.
    for option in ("message_queue", "channel"):
        socketio.server_options.pop(option, None)
    socketio.init_app(
        app,
        async_mode="gevent",
        client_manager=client_manager,
        cors_allowed_origins=settings.allowed_origins,
        transports=list(settings.transports),
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        # The transport's hard cap; events between MAX_PAYLOAD_BYTES and this get PAYLOAD_TOO_LARGE.
        max_http_buffer_size=2 * settings.max_payload_bytes,
        # The standard library's JSON with python-engineio's integer bound, its decoder built once.
        json=packet_json,
        # Loggers, not False: with False these libraries add a handler of their own, which prints every
        # error a second time, outside our format and our redaction.
        logger=_library_logger("socketio.server"),
        engineio_logger=_library_logger("engineio.server"),
    )
