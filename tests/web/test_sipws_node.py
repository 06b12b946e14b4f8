"""The browser phone's signalling module (api/static/sipws.js): its pure parts (MD5, digest,
parser, responses) under ``node --test`` (tests/web/sipws.test.mjs). Skipped without node."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (node 20+ runs these tests)")
def test_sipws_pure_parts_under_node(tmp_path: Path) -> None:
    assert NODE is not None
    module = tmp_path / "sipws.mjs"  # an ES module by its extension, whatever package.json says
    shutil.copyfile(ROOT / "api" / "static" / "sipws.js", module)
    done = subprocess.run(
        [NODE, "--test", str(ROOT / "tests" / "web" / "sipws.test.mjs")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SIPWS_MODULE": module.as_uri()},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
