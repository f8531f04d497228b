"""SimPy discrete-event models of a GPU's memory system (and, from other modules, SMs, PIM).

``import simgpu.sim.request`` needs nothing beyond the standard library; the components are
loaded on first use of the names below, so importing this package stays cheap.

Main entry points:

* :func:`build_system` (``simgpu.sim.system``): L1/shared, crossbar, L2 and HBM from a
  DeviceSpec; ``system.access(req)`` returns an event, ``system.stats()`` a DataFrame;
* :class:`MemRequest` (``simgpu.sim.request``);
* :class:`HBM` (``simgpu.sim.hbm``), usable on its own;
* :class:`HostLink` (``simgpu.sim.pcie``);
* traffic sources (``simgpu.sim.sources``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simgpu.sim.request import MemRequest

if TYPE_CHECKING:
    from simgpu.sim.cache import Port, SectorCache, SharedMemory
    from simgpu.sim.hbm import HBM, HBMConfig
    from simgpu.sim.l2 import L2
    from simgpu.sim.noc import Crossbar
    from simgpu.sim.pcie import HostLink
    from simgpu.sim.sources import Paced, PointerChase, RandomAccess, SourceResult, Stream
    from simgpu.sim.system import MemorySystem, MSHRCounters, build_system

__all__ = [
    "MemRequest",
    "build_system",
    "MemorySystem",
    "HBM",
    "HBMConfig",
    "HostLink",
    "SectorCache",
    "MSHRCounters",
    "Port",
    "SharedMemory",
    "L2",
    "Crossbar",
    "PointerChase",
    "Stream",
    "RandomAccess",
    "Paced",
    "SourceResult",
]

_LAZY = {
    "build_system": "simgpu.sim.system",
    "MemorySystem": "simgpu.sim.system",
    "HBM": "simgpu.sim.hbm",
    "HBMConfig": "simgpu.sim.hbm",
    "HostLink": "simgpu.sim.pcie",
    "SectorCache": "simgpu.sim.cache",
    "MSHRCounters": "simgpu.sim.system",
    "Port": "simgpu.sim.cache",
    "SharedMemory": "simgpu.sim.cache",
    "L2": "simgpu.sim.l2",
    "Crossbar": "simgpu.sim.noc",
    "PointerChase": "simgpu.sim.sources",
    "Stream": "simgpu.sim.sources",
    "RandomAccess": "simgpu.sim.sources",
    "Paced": "simgpu.sim.sources",
    "SourceResult": "simgpu.sim.sources",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simgpu.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
