"""The README's Configuration table says what the settings table declares: every variable, with its default."""
from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest

from realtime.config import DEFAULTS
from realtime.settings_table import TABLE, Setting

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"

#: Variables read by gunicorn.conf.py, not by the app: name -> (README default, gunicorn.conf.py global it sets,
#: its value from an environment without any of these variables).
GUNICORN_ONLY: dict[str, tuple[str, str, int]] = {
    "WEB_CONCURRENCY": ("`1`", "_requested_workers", 1),
    "WORKER_CONNECTIONS": ("`20000`", "worker_connections", 20000),
    "GRACEFUL_TIMEOUT": ("`SHUTDOWN_TIMEOUT`", "graceful_timeout", int(float(str(DEFAULTS["SHUTDOWN_TIMEOUT"])))),
}


def configuration_rows() -> list[tuple[list[str], str]]:
    """The rows of the README's Configuration table: the variables each names, and its default cell."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names_cell, default_cell, _meaning = (cell.strip() for cell in line.strip().strip("|").split(" | "))
            rows.append((re.findall(r"`([A-Z][A-Z0-9_]*)`", names_cell), default_cell))
    return rows


def readme_defaults() -> dict[str, str]:
    """Variable -> its default as the README writes it; a row naming several variables lists one default each
    (``25``, ``20``) or one for all (``unset``)."""
    defaults: dict[str, str] = {}
    for names, cell in configuration_rows():
        parts = cell.split(", ") if len(names) > 1 else [cell]
        if len(parts) == 1:
            parts = parts * len(names)
        assert len(parts) == len(names), f"README row {names} has defaults {cell!r}: give one, or one per variable."
        for name, default in zip(names, parts, strict=True):
            assert name not in defaults, f"README names {name} in two rows of the Configuration table."
            defaults[name] = default
    return defaults


def normalized(default: str) -> str:
    """A default without its markdown code marks."""
    return default.replace("`", "").strip()


def gunicorn_globals(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict[str, Any]:
    """What gunicorn.conf.py sets when the environment holds only ``environ`` of the variables it reads."""
    for name in (*DEFAULTS, *GUNICORN_ONLY):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_the_readme_table_parses_into_rows() -> None:
    rows = configuration_rows()
    assert (["PING_INTERVAL", "PING_TIMEOUT"], "`25`, `20`") in rows
    assert len(readme_defaults()) >= len(TABLE)


@pytest.mark.parametrize("setting", TABLE, ids=lambda setting: setting.name)
def test_every_declared_setting_has_a_readme_row_with_its_default(setting: Setting) -> None:
    defaults = readme_defaults()
    assert setting.name in defaults, f"{setting.name} is declared but the README's Configuration table omits it."
    assert normalized(defaults[setting.name]) == normalized(setting.documented_default)


def test_every_readme_row_names_a_declared_setting() -> None:
    declared = {setting.name for setting in TABLE}
    assert set(readme_defaults()) - declared - set(GUNICORN_ONLY) == set()


def test_settings_are_declared_once() -> None:
    names = [setting.name for setting in TABLE]
    assert len(names) == len(set(names))
    assert all(setting.doc and "\n" not in setting.doc for setting in TABLE)


@pytest.mark.parametrize("name", GUNICORN_ONLY)
def test_gunicorn_variables_default_as_the_readme_says(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    documented, attribute, value = GUNICORN_ONLY[name]
    assert normalized(readme_defaults()[name]) == normalized(documented)
    assert gunicorn_globals(monkeypatch)[attribute] == value


def test_gunicorn_graceful_timeout_follows_shutdown_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gunicorn_globals(monkeypatch, SHUTDOWN_TIMEOUT="7")["graceful_timeout"] == 7


def test_gunicorn_conf_falls_back_to_the_app_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn.conf.py runs before the app exists and cannot import it: its fallbacks must equal the table's."""
    conf = gunicorn_globals(monkeypatch)
    assert conf["bind"] == f"0.0.0.0:{DEFAULTS['PORT']}"
    assert conf["_transports"] == str(DEFAULTS["SOCKET_TRANSPORTS"]).split(",")
    assert conf["_shutdown_timeout"] == float(str(DEFAULTS["SHUTDOWN_TIMEOUT"]))
    assert conf["loglevel"] == str(DEFAULTS["LOG_LEVEL"]).lower()
