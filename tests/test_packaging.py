"""The package list in setup.cfg names every package of ``realtime/`` (a wheel without one would break)."""
from __future__ import annotations

import configparser
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cfg_lists_every_package_and_ships_the_templates() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}
    found = set(find_packages(where=str(ROOT), include=["realtime", "realtime.*"]))
    assert listed == found | {"realtime.templates"}, (
        f"setup.cfg [options] packages differs from the packages on disk: add {sorted(found - listed)}, "
        f"remove {sorted(listed - found - {'realtime.templates'})}"
    )
    package_dir = config["options"]["package_dir"]
    assert "realtime.templates = templates" in package_dir
