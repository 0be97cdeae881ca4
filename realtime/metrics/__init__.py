"""Prometheus metrics: the metric objects, the cheap recording calls the server makes, and the scrape.

A bottom-layer package (it imports nothing above ``realtime.errors``), so every layer may record into it.
"""
