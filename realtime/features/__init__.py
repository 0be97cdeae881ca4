"""Feature modules, one socket blueprint each."""
