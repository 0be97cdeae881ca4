"""What an idle socket costs a gunicorn worker, cut where no public setting reaches (issue 9, item 3).

Measured on one worker holding 2,000-10,000 idle websocket sockets (``bench/side_by_side.py --scenario d``):

- python-engineio serves a websocket with two greenlets for its whole life (the request's, reading, and a
  writer), and the request's keeps gevent.pywsgi's handler, buffer and headers and Flask's request context:
  about 40 KB per socket. :mod:`realtime.sockets.websocket_handover` hands each websocket opened directly
  over to the hub (:mod:`realtime.sockets.hub_websocket`), which reads and writes it with libev watchers
  and a greenlet only while there is something to read: 46 KB of RSS per idle socket became 6.5 KB.
- python-engineio waits out each ping interval in a greenlet of its own per socket (``Socket.schedule_ping``
  starts ``_send_ping``, which sleeps ``ping_interval``). Every sleeping greenlet keeps a copy of its C stack
  slice and its own Python frame stack on the heap: 7-9 KB per socket.
  :func:`realtime.sockets.library_hooks.install_ping_timers` (it replaces a python-engineio method) waits on
  one libev timer per socket instead and starts a greenlet only for the moment a ping is sent.
- gevent records, for every greenlet it creates, the spawning greenlet and the ten innermost frames of the
  spawner's stack (``gevent.config.track_greenlet_tree``): 3.5-5 KB per socket (three greenlets each), kept
  for the socket's whole life, and the work of building them on every connect. Nothing here reads that tree.
- gevent.pywsgi reads each connection through an 8 KiB ``BufferedReader`` that lives as long as the
  connection (a websocket: for ever). The packets clients send here are small JSON, and a read larger than
  the buffer goes around it: :func:`with_small_read_buffer` reads through 1 KiB, 2.5-4 KB less per socket.
- A worker's heap grows by ~100 GC-tracked objects per socket; CPython's default thresholds then run a full
  collection each time the heap grows by a quarter, each a pause of the whole hub that scans every object
  (0.1-0.3 s at 5,000 sockets, 0.3-0.6 s at 10,000). :func:`tune_collector` moves what the app built at
  start-up out of the collector's view (``gc.freeze``), and :mod:`realtime.sockets.collector` does the same
  with what survives each full collection after it.

gunicorn.conf.py applies all of them in each worker before it serves (``post_worker_init``).
"""
from __future__ import annotations

import gc
from typing import Any

import gevent

#: The read buffer of each connection (Python's default is 8 KiB).
READ_BUFFER_BYTES = 1024


def tune_collector() -> None:
    """Freeze the start-up heap out of every collection (see the module)."""
    gc.collect()
    gc.freeze()


def stop_tracking_greenlet_tree() -> None:
    """Stop gevent from recording the spawner and spawning stack of each new greenlet (see the module)."""
    gevent.config.track_greenlet_tree = False


def with_small_read_buffer(handler_class: type) -> type:
    """A subclass of the gevent.pywsgi handler class ``handler_class`` whose connections read through a
    :data:`READ_BUFFER_BYTES` buffer instead of the default one (see the module)."""

    def __init__(self: Any, sock: Any, address: Any, server: Any, *args: Any, **kwargs: Any) -> None:
        handler_class.__init__(self, sock, address, server, *args, **kwargs)
        # pywsgi opened the default reader; nothing has read through it yet.
        self.rfile = sock.makefile("rb", READ_BUFFER_BYTES)

    return type(handler_class.__name__, (handler_class,), {"__init__": __init__, "__module__": __name__})
