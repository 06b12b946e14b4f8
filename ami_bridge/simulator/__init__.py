"""In-project PBX simulator: an asyncio AMI server that behaves like Asterisk 22.10.1.

Quick start::

    from ami_bridge.simulator import SimulatorConfig, serve

    sim = await serve("127.0.0.1", 0, SimulatorConfig(speed=20.0, seed=7))
    ...  # connect an AMI client to ("127.0.0.1", sim.port), user dialer / dialer-secret
    await sim.restart()   # core restart now: Shutdown, EOF, refused ~0.5 s, FullyBooted later
    await sim.kill()      # kill -9: bare EOF, refused until ...
    await sim.start()
    await sim.close()

See :mod:`ami_bridge.simulator.config` for customers, agents and the generic population, and
``docs/asterisk.md`` for how it maps onto the shipped dialplan.
"""

from ami_bridge.simulator.client import AmiTestClient, Message
from ami_bridge.simulator.config import (
    AMD_HUMAN,
    AMD_MACHINE,
    AMD_SILENCE,
    LAB_CUSTOMERS,
    Agent,
    AmdTruth,
    AmiUser,
    Customer,
    Population,
    SimulatorConfig,
    Step,
)
from ami_bridge.simulator.pbx import Event
from ami_bridge.simulator.server import ChannelInfo, SimulatorServer, serve

__all__ = [
    "AMD_HUMAN",
    "AMD_MACHINE",
    "AMD_SILENCE",
    "LAB_CUSTOMERS",
    "Agent",
    "AmdTruth",
    "AmiTestClient",
    "AmiUser",
    "ChannelInfo",
    "Customer",
    "Event",
    "Message",
    "Population",
    "SimulatorConfig",
    "SimulatorServer",
    "Step",
    "serve",
]
