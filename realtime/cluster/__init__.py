"""Per-worker background work: the control bus, heartbeat and reaper, session checks, probes, drain."""
