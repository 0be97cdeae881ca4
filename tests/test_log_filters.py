"""A client's bad request that python-engineio reports at ERROR reaches our log as a WARNING."""
from __future__ import annotations

import io
import logging

import engineio

from realtime import create_app


def test_engineio_first_bad_request_report_is_a_warning(config: dict[str, object]) -> None:
    app = create_app(config)
    try:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("engineio.server")
        logger.addHandler(handler)
        try:
            server = engineio.Server(logger=logger)
            server._log_error_once("Session is disconnected abc", "bad-sid")
            logger.error("a real engine.io failure")
        finally:
            logger.removeHandler(handler)
        lines = stream.getvalue().splitlines()
        assert lines[0].startswith("WARNING engineio.server: Session is disconnected abc"), lines
        assert lines[1] == "ERROR engineio.server: a real engine.io failure", lines
    finally:
        app.extensions["realtime"].lifecycle.stop()
