"""Marshmallow schemas: they validate inbound payloads, shape outbound ones and feed the docs."""
