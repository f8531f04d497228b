"""A fixed-latency memory for unit tests of the SM model (the real hierarchy is simgpu.sim)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class StubRequest:
    sm: int
    line_addr: int
    sectors: int
    write: bool
    space: str
    cache_op: str
    t_issue: float
    t_done: float | None = None
    served_by: str | None = None
    bulk: bool = False  # a TMA copy's request (simgpu.sim.request.MemRequest.bulk)


class FixedLatencyMemory:
    """Every access completes after ``latency`` cycles; no bandwidth limit."""

    def __init__(self, env: Any, latency: float = 100.0, level: str = "DRAM") -> None:
        self.env = env
        self.latency = latency
        self.level = level
        self.requests: list[StubRequest] = []

    def access(self, req: StubRequest) -> Any:
        self.requests.append(req)
        req.t_done = self.env.now + self.latency
        req.served_by = self.level
        return self.env.timeout(self.latency, value=req)


def stub_factory(latency: float = 100.0, level: str = "DRAM") -> Any:
    holder: dict[str, FixedLatencyMemory] = {}

    def make(env: Any, spec: Any) -> FixedLatencyMemory:
        holder["system"] = FixedLatencyMemory(env, latency, level)
        return holder["system"]

    make.holder = holder  # type: ignore[attr-defined]
    return make


class DecidedMemory(FixedLatencyMemory):
    """Like :class:`FixedLatencyMemory`, but through ``submit``: each access's completion is
    decided as it arrives and reported at once, as the real load path reports cache hits."""

    def submit(self, req: StubRequest, done: Any) -> None:
        self.requests.append(req)
        req.t_done = self.env.now + self.latency
        req.served_by = self.level
        done(req)


def decided_factory(latency: float = 100.0, level: str = "L2") -> Any:
    def make(env: Any, spec: Any) -> DecidedMemory:
        return DecidedMemory(env, latency, level)

    return make
