"""``requirements.txt`` (what Heroku's Python buildpack installs) and ``.python-version`` agree with ``setup.cfg``.

Checked offline: every ``install_requires`` entry is pinned at a version its specifier admits, every line is an
``==`` pin, the header names the command that regenerates the file, everything the installed dependencies pull
in (their own metadata, markers evaluated for this interpreter) is pinned too, and ``.python-version`` names the
Python that ``python_requires`` admits and that runs the tests.
"""
from __future__ import annotations

import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
GENERATE = "make requirements"
FIX = f"Run `{GENERATE}` and commit requirements.txt."


def setup_options() -> configparser.SectionProxy:
    """The ``[options]`` section of ``setup.cfg``."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser["options"]


def install_requires() -> list[Requirement]:
    """``setup.cfg``'s ``install_requires``, parsed."""
    lines = setup_options()["install_requires"].splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]


def requirement_lines() -> list[str]:
    """The requirement lines of ``requirements.txt``: comments, annotations and blank lines dropped."""
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def pins() -> dict[str, Version]:
    """Canonical name -> pinned version, from the ``name==version`` lines of ``requirements.txt``."""
    pinned: dict[str, Version] = {}
    for line in requirement_lines():
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        pinned[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pinned


def test_every_line_is_an_exact_pin() -> None:
    loose = []
    for line in requirement_lines():
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if requirement.url or len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            loose.append(line)
    assert requirement_lines(), "requirements.txt lists no package"
    assert not loose, f"requirements.txt has lines that are not `name==version`: {loose}. {FIX}"


def test_header_names_the_generating_command() -> None:
    header = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert any(line.lstrip("# ").strip() == GENERATE for line in header), (
        f"requirements.txt's header {header!r} does not name `{GENERATE}`. {FIX}"
    )


@pytest.mark.parametrize("requirement", install_requires(), ids=str)
def test_install_requires_entry_is_pinned_at_an_admitted_version(requirement: Requirement) -> None:
    pinned = pins()
    name = canonicalize_name(requirement.name)
    assert name in pinned, f"{requirement} (setup.cfg) is missing from requirements.txt. {FIX}"
    assert requirement.specifier.contains(pinned[name], prereleases=True), (
        f"requirements.txt pins {name}=={pinned[name]}, which {str(requirement)!r} (setup.cfg) refuses. {FIX}"
    )


def dependency_closure() -> set[str]:
    """Canonical names of ``install_requires`` and of everything they require, read from the installed
    distributions' metadata (``make install-test`` installs them) with markers evaluated for this interpreter."""
    seen: set[str] = set()
    pending: list[tuple[Requirement, frozenset[str]]] = [(req, frozenset(req.extras)) for req in install_requires()]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        key = name + "".join(sorted(f"[{extra}]" for extra in extras))
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is not installed in {sys.prefix}: run `make install-test`, then `{GENERATE}`.")
        for line in distribution.requires or []:
            child = Requirement(line)
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in {"", *extras}):
                pending.append((child, frozenset(child.extras)))
    return {key for key in seen if "[" not in key}


def test_everything_the_dependencies_pull_in_is_pinned() -> None:
    # A transitive dependency missing from the file would be installed unpinned on the dyno, at whatever
    # version is newest on the day of the build.
    unpinned = sorted(dependency_closure() - set(pins()))
    assert not unpinned, f"requirements.txt does not pin {unpinned}, which setup.cfg's dependencies require. {FIX}"


def test_python_version_file_agrees_with_python_requires_and_this_interpreter() -> None:
    written = (ROOT / ".python-version").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"3\.\d+", written), f".python-version holds {written!r}; write a major.minor such as 3.11"
    python_requires = SpecifierSet(setup_options()["python_requires"])
    assert python_requires.contains(f"{written}.0"), f".python-version {written} is outside python_requires {python_requires}"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert written == running, f".python-version says {written} (the dyno's Python) but the tests run on {running}"
