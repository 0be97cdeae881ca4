"""Run the Node test tools pinned in tests/node: the AsyncAPI validator and the TypeScript compiler."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.node_client import NODE_DIR, ensure_node_modules


def validate_asyncapi(spec: dict[str, Any]) -> dict[str, Any]:
    """``@asyncapi/parser``'s verdict on ``spec``: ``{parsed, errors, diagnostics}``."""
    ensure_node_modules()
    result = subprocess.run(
        ["node", str(NODE_DIR / "validate-asyncapi.js")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 2 or not result.stdout.strip():
        raise RuntimeError(f"the AsyncAPI validator failed to run: {result.stderr[-2000:]}")
    verdict: dict[str, Any] = json.loads(result.stdout)
    return verdict


@contextmanager
def typescript_project(files: dict[str, str]) -> Iterator[Path]:
    """A scratch folder inside tests/node (so ``socket.io-client`` resolves) holding ``files``."""
    ensure_node_modules()
    folder = Path(tempfile.mkdtemp(prefix=".tsc-", dir=NODE_DIR))
    try:
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tsc(folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """``tsc --strict --noEmit`` over ``files`` in ``folder``."""
    return subprocess.run(
        [str(NODE_DIR / "node_modules" / ".bin" / "tsc"), "--strict", "--noEmit", "--target", "es2020",
         "--module", "commonjs", "--moduleResolution", "node", *files],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
