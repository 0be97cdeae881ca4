"""Socket.IO plumbing: blueprints, dispatch with the ack envelope, and the connection lifecycle."""
