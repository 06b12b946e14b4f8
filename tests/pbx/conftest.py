"""The real-PBX tier: fixtures on top of the session's lab Asterisk (``lab_pbx``,
tests/conftest.py). Every test here is marked ``pbx`` and skipped, with the reason, when the
Asterisk bundle is absent.

Fixtures:

* ``lab_pbx`` (session): the running :class:`dialer.pbx_lab.LabPbx`.
* ``lab_ami``: an :class:`AmiTestClient` logged in as the lab-admin user (all classes).
* ``pbx_stack``: a started :class:`tests.pbx.stack.PbxStack` (API + one dialer, virtual
  agents, its own SQLite/Redis), stopped after the test.
* ``module_stack`` / ``module_ami``: the same, shared by the tests of one module (their
  campaigns and agents must not overlap). Such a module runs its tests on the module's event
  loop: ``pytestmark = pytest.mark.asyncio(loop_scope="module")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ami_bridge.simulator import AmiTestClient
from dialer.pbx_lab import LabPbx
from tests.pbx.stack import PbxStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.pbx)


@pytest.fixture
async def lab_ami(lab_pbx: LabPbx) -> AsyncIterator[AmiTestClient]:
    admin = lab_pbx.admin
    client = await AmiTestClient.connect(admin.host, admin.port)
    assert (await client.login(admin.username, admin.secret)).response == "Success"
    yield client
    await client.close()


@pytest.fixture
async def pbx_stack(lab_pbx: LabPbx, tmp_path: Path) -> AsyncIterator[PbxStack]:
    stack = PbxStack(lab_pbx, tmp_path).start()
    try:
        yield stack
    finally:
        await stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_stack(
    lab_pbx: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PbxStack]:
    stack = PbxStack(lab_pbx, tmp_path_factory.mktemp("pbx-stack")).start()
    try:
        yield stack
    finally:
        await stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_ami(lab_pbx: LabPbx) -> AsyncIterator[AmiTestClient]:
    admin = lab_pbx.admin
    client = await AmiTestClient.connect(admin.host, admin.port)
    assert (await client.login(admin.username, admin.secret)).response == "Success"
    yield client
    await client.close()
