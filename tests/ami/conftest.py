"""Fixtures for the AMI bridge tests: the real recordings, parsed (never hand-copied)."""

from __future__ import annotations

import pytest

from ami_bridge.transcripts import Transcript, load_all


@pytest.fixture(scope="session")
def transcripts() -> dict[str, Transcript]:
    loaded = load_all()
    assert len(loaded) == 29, "expected the 29 AMI recordings"
    return {t.name[:2]: t for t in loaded}
