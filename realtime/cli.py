"""``flask token create|revoke``: sessions and tokens for development and QA."""
from __future__ import annotations

import json
import logging

import click
import redis
from flask import Flask
from flask.cli import AppGroup

from realtime.identifiers import is_identifier
from realtime.services.container import current_services

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
    """Revoke SESSION_ID: its tokens no longer connect, and its live sockets on every worker get
    force_logout (reason revoked) and are disconnected at once."""
    services = current_services()
    if not services.sessions.checks_sessions:
        raise click.UsageError("REDIS_URL is not set: there is no session store to revoke from.")
    try:
        known = services.lifecycle.revoke(session_id)
    except redis.RedisError as exc:
        raise click.ClickException(
            f"Redis did not answer ({type(exc).__name__}); check REDIS_URL and that Redis is up, then run again."
        ) from None
    if not known:
        raise click.ClickException(f"No session {session_id!r} (already revoked or expired).")
    click.echo(f"revoked {session_id}")


docs_cli = AppGroup("docs", help="Export the event documentation; check it for breaking changes.")


@docs_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["asyncapi", "ts", "html", "client"]), required=True)
@click.option(
    "-o", "--output", type=click.Path(writable=True), required=True,
    help="The file to write; for --format client, the folder (created if missing) of the npm package.",
)
def export_docs(fmt: str, output: str) -> None:
    """Write the AsyncAPI JSON, the TypeScript types or a standalone HTML catalogue to OUTPUT, or the typed
    client's npm package folder (client.js, client.d.ts, index.js, index.d.ts, package.json) into OUTPUT."""
    from pathlib import Path

    from flask import current_app, render_template

    from realtime.docs.client import write_package
    from realtime.http.ws_docs import page_context, servers_for

    docs = current_app.extensions["realtime_docs"]
    if fmt == "client":
        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise click.BadParameter(
                f"{output!r} is a file; --format client writes a folder. Pass a folder path.", param_hint="OUTPUT"
            )
        written = write_package(docs, folder)
        click.echo(f"wrote client ({len(written)} files) to {output}")
        return
    if Path(output).is_dir():
        raise click.BadParameter(f"{output!r} is a folder; --format {fmt} writes one file.", param_hint="OUTPUT")
    if fmt == "asyncapi":
        text = json.dumps(docs.generate_asyncapi_spec(servers_for(current_app, None)), indent=2) + "\n"
    elif fmt == "ts":
        text = docs.generate_client_types()
    else:
        with current_app.test_request_context("/ws-docs"):
            text = render_template("ws_docs.html", **page_context(current_app, standalone=True))
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"wrote {fmt} to {output}")


@docs_cli.command("diff")
@click.argument("old_spec", type=click.Path(exists=True, dir_okay=False))
def diff_docs(old_spec: str) -> None:
    """List what changed from OLD_SPEC (a saved AsyncAPI file) to the running event contract, one line per
    change, breaking ones first; exit 1 when any change breaks existing clients, 0 when all are additive."""
    from flask import current_app

    from realtime.docs.spec_diff import diff_specs

    try:
        with open(old_spec, encoding="utf-8") as handle:
            saved = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"{old_spec!r} is not JSON ({exc}); pass a file written by `flask docs export --format asyncapi` "
            "or saved from GET /ws-docs/spec.",
            param_hint="OLD_SPEC",
        ) from None
    running = current_app.extensions["realtime_docs"].generate_asyncapi_spec()
    try:
        changes = diff_specs(saved, running)
    except ValueError as exc:
        raise click.BadParameter(f"{old_spec!r}: {exc}", param_hint="OLD_SPEC") from None
    for change in changes:
        click.echo(str(change))
    breaking = sum(change.breaking for change in changes)
    before = saved["info"] if isinstance(saved.get("info"), dict) else {}
    after = running["info"]
    click.echo(
        f"{breaking} breaking, {len(changes) - breaking} additive: saved {before.get('version')} "
        f"({before.get('x-schema-hash', 'no hash')}) → running {after['version']} ({after['x-schema-hash']})"
    )
    for note in _version_notes(before, after, breaking):
        click.echo(note, err=True)
    if breaking:
        click.get_current_context().exit(1)


def _version_notes(before: dict[str, object], after: dict[str, object], breaking: int) -> list[str]:
    """Reminders to bump ``SCHEMA_VERSION`` when the contract changed and its version did not follow."""
    bump = "bump SCHEMA_VERSION in realtime/docs/registry.py"
    old_major, new_major = str(before.get("version", "")).split(".")[0], str(after["version"]).split(".")[0]
    if breaking and old_major == new_major:
        return [f"note: breaking changes need a new major version (still {old_major}.x); {bump}."]
    if before.get("x-schema-hash") != after["x-schema-hash"] and before.get("version") == after["version"]:
        return [f"note: the contract changed but its version is still {after['version']}; {bump}."]
    return []


def init_app(app: Flask) -> None:
    """Attach the CLI commands to ``app``."""
    app.cli.add_command(token_cli)
    app.cli.add_command(docs_cli)
