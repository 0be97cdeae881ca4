"""Handshake authentication: JWT verification, sessions and the user directory."""
