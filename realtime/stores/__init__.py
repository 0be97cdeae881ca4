"""Stores of cluster-wide state, one module per concern: a Protocol, its in-memory and its Redis transport."""
