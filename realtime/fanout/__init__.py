"""Fan-out: python-socketio client managers that log, encode and publish broadcasts (see :mod:`.manager`)."""
