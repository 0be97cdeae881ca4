"""The Redis plumbing the stores share: client, key names, Lua scripts and what a Redis failure means."""
