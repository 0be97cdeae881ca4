"""WSGI entry point: gunicorn serves ``wsgi:app``; ``flask --app wsgi`` runs the CLI."""
from gevent import monkey

monkey.patch_all()

from realtime import create_app  # noqa: E402  (must come after monkey-patching)

app = create_app()
