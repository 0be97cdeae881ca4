"""``flask token create|revoke``: sessions and tokens for development and QA."""
from __future__ import annotations

import logging

import click
from flask import Flask
from flask.cli import AppGroup

from realtime.identifiers import is_identifier
from realtime.services import current_services

logger = logging.getLogger(__name__)

token_cli = AppGroup("token", help="Create and revoke socket sessions and their JWTs.")


@token_cli.command("create")
@click.argument("user_ids", nargs=-1, required=True)
@click.option("--ttl", type=click.IntRange(min=1), default=None, help="Lifetime in seconds (default TOKEN_TTL).")
def create_tokens(user_ids: tuple[str, ...], ttl: int | None) -> None:
    """Register one session per USER_ID and print one JWT per line, in argument order."""
    services = current_services()
    bad = [u for u in user_ids if not is_identifier(u)]
    if bad:
        raise click.BadParameter(
            f"{bad[0]!r} is not a user id; ids are 1-64 characters of A-Z a-z 0-9 _ -.", param_hint="USER_ID"
        )
    if not services.tokens.can_sign:
        raise click.UsageError("No signing key: set JWT_SECRET (HS*) or JWT_PRIVATE_KEY (asymmetric algorithms).")
    if not services.sessions.checks_sessions:
        logger.warning("REDIS_URL is not set: sessions are not stored and not checked (embedded default).")
    lifetime = ttl or services.settings.token_ttl
    session_ids = services.sessions.create(list(user_ids), lifetime)
    tokens = [services.tokens.issue(u, s, lifetime) for u, s in zip(user_ids, session_ids, strict=True)]
    click.echo("\n".join(tokens))


@token_cli.command("revoke")
@click.argument("session_id")
def revoke_token(session_id: str) -> None:
    """Revoke SESSION_ID: its tokens no longer connect."""
    services = current_services()
    if not services.sessions.checks_sessions:
        raise click.UsageError("REDIS_URL is not set: there is no session store to revoke from.")
    if not services.sessions.revoke(session_id):
        raise click.ClickException(f"No session {session_id!r} (already revoked or expired).")
    click.echo(f"revoked {session_id}")


def init_app(app: Flask) -> None:
    """Attach the CLI commands to ``app``."""
    app.cli.add_command(token_cli)
