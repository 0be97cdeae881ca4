"""Render the scrape: this process's registry, or every worker's values in multiprocess mode."""
from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from realtime.metrics import tally

#: The variable prometheus_client reads at import to store values in per-process files.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition (format 0.0.4, which every Prometheus version reads) and its content type,
    after this process's pending counts are written (:mod:`realtime.metrics.tally`).

    Under gunicorn the master sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports prometheus_client,
    so each worker writes its values to files there; a scrape, answered by whichever worker, sums the files
    of all of them (gauges as ``livesum``: only live workers). Without it (one process, tests) the
    process's own registry answers.
    """
    tally.flush()
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
