"""Traffic sources that drive a :class:`~simgpu.sim.system.MemorySystem`.

* :class:`PointerChase`: one dependent load at a time over a footprint, in a pseudo-random
  cyclic order (every line once per lap), as the published latency benchmarks do;
* :class:`Stream`: read, write or copy of consecutive lines with a fixed number of requests in
  flight per SM (the occupancy), optionally a read/write mix;
* :class:`RandomAccess`: the same closed loop over random lines of a footprint;
* :class:`Paced`: an open loop issuing requests at a fixed rate, for bandwidth-latency curves.

A source is started with :meth:`Source.start` (it registers callbacks or a process; nothing
runs until ``env.run()``) and summarised by :meth:`Source.result`. It hands each request to
:meth:`MemorySystem.submit <simgpu.sim.system.MemorySystem.submit>` and, once the completion
time is decided, schedules one Timeout of its own that fires then with the request. Each source
also integrates its own number of requests in flight over time, measured when its events fire,
so Little's law (mean in flight = throughput x mean latency) can be checked against the request
timestamps.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from simgpu.errors import SimgpuError
from simgpu.sim.collector import relaxed_gc
from simgpu.sim.request import MemRequest
from simgpu.sim.system import MemorySystem, build_system

if TYPE_CHECKING:
    import pandas as pd

    from simgpu.devices import DeviceSpec

__all__ = [
    "SourceResult",
    "Source",
    "PointerChase",
    "Stream",
    "RandomAccess",
    "Paced",
    "cyclic_order",
    "run_pointer_chase",
]


def cyclic_order(
    n: int, seed: int = 0, start: int = 0, *, backward: bool = False
) -> Iterator[int]:
    """An endless pseudo-random walk visiting each of ``0..n-1`` once per lap.

    A full-period linear congruential generator over the next power of two (Hull-Dobell: odd
    increment, multiplier = 1 mod 4), skipping values >= n (cycle walking), so no permutation
    of a 4 GB footprint has to be stored. ``backward``: the same lap walked the other way from
    ``start`` (the values that come before it), through the inverse map.
    """
    if n <= 0:
        raise SimgpuError(f"cyclic_order: n = {n}, expected > 0")
    m = 1 << max(1, (n - 1).bit_length())
    rng = random.Random(seed)
    a = 4 * rng.randrange(m // 4 or 1) + 1 if m >= 4 else 1
    c = 2 * rng.randrange(m // 2) + 1
    if backward:  # x = a y + c  <=>  y = a^-1 (x - c)  (a is odd, so invertible mod m)
        a, c = pow(a, -1, m), (-pow(a, -1, m) * c) % m
    x = start % n
    while True:
        yield x
        x = (a * x + c) % m
        while x >= n:
            x = (a * x + c) % m


@dataclass
class SourceResult:
    """What one source saw: requests, bytes, span, latencies and time-averaged occupancy."""

    name: str
    clock_MHz: float
    requests: int = 0
    reads: int = 0
    writes: int = 0
    bytes: int = 0
    t_start: float = 0.0
    t_end: float = 0.0
    in_flight_area: float = 0.0  # integral of requests in flight over time, request-cycles
    latencies: array[float] = field(default_factory=lambda: array("d"))
    read_latencies: array[float] = field(default_factory=lambda: array("d"))
    done_times: array[float] = field(default_factory=lambda: array("d"))
    done_bytes: array[int] = field(default_factory=lambda: array("q"))

    @property
    def span_cycles(self) -> float:
        """From the first issue to the last completion, SM cycles."""
        return self.t_end - self.t_start

    @property
    def bandwidth_GBps(self) -> float:
        """Bytes moved per second over the span, GB/s (1e9 B/s)."""
        s = self.span_cycles / (self.clock_MHz * 1e6)
        return self.bytes / s / 1e9 if s > 0 else float("nan")

    def steady_bandwidth_GBps(self, trim: float = 0.1) -> float:
        """Bandwidth between the ``trim`` and ``1 - trim`` quantiles of completions, GB/s.

        Leaves out the ramp-up (the first requests' latency, when nothing has returned yet)
        and the drain, which a short simulation would otherwise count against the throughput.
        """
        return self.bandwidth_between_GBps(trim, 1 - trim)

    def bandwidth_between_GBps(self, q0: float, q1: float) -> float:
        """Bandwidth between the ``q0`` and ``q1`` quantiles of completions, GB/s (over the
        whole span where they leave no interval)."""
        n = len(self.done_times)
        lo, hi = int(n * q0), int(n * q1) - 1
        if hi <= lo:
            return self.bandwidth_GBps
        t0, t1 = self.done_times[lo], self.done_times[hi]
        moved = sum(self.done_bytes[lo + 1 : hi + 1])
        s = (t1 - t0) / (self.clock_MHz * 1e6)
        return moved / s / 1e9 if s > 0 else float("nan")

    @property
    def mean_latency_cycles(self) -> float:
        """Mean request latency, SM cycles."""
        return sum(self.latencies) / len(self.latencies) if self.latencies else float("nan")

    def percentile_cycles(self, q: float, reads_only: bool = False) -> float:
        """Latency percentile ``q`` (0-100), SM cycles (of reads only if asked)."""
        lat = self.read_latencies if reads_only else self.latencies
        if not lat:
            return float("nan")
        return float(np.percentile(np.frombuffer(lat, dtype=np.float64), q))

    @property
    def mean_read_latency_cycles(self) -> float:
        """Mean latency of the reads (the loaded latency of bandwidth-latency curves)."""
        lat = self.read_latencies
        return sum(lat) / len(lat) if lat else float("nan")

    @property
    def mean_in_flight(self) -> float:
        """Time-averaged requests in flight, measured as the source's events fired."""
        return self.in_flight_area / self.span_cycles if self.span_cycles > 0 else float("nan")

    @property
    def littles_in_flight(self) -> float:
        """Throughput x mean latency (Little's law), from the request timestamps."""
        if self.span_cycles <= 0:
            return float("nan")
        return self.requests / self.span_cycles * self.mean_latency_cycles

    def to_dict(self) -> dict[str, Any]:
        """One flat row."""
        ns = 1000.0 / self.clock_MHz
        return {
            "source": self.name,
            "requests": self.requests,
            "reads": self.reads,
            "writes": self.writes,
            "bytes": self.bytes,
            "span_cycles": self.span_cycles,
            "bandwidth_GBps": self.bandwidth_GBps,
            "steady_bandwidth_GBps": self.steady_bandwidth_GBps(),
            "latency_mean_cycles": self.mean_latency_cycles,
            "latency_mean_ns": self.mean_latency_cycles * ns,
            "read_latency_mean_ns": self.mean_read_latency_cycles * ns,
            "latency_p50_ns": self.percentile_cycles(50) * ns,
            "latency_p90_ns": self.percentile_cycles(90) * ns,
            "latency_p99_ns": self.percentile_cycles(99) * ns,
            "mean_in_flight": self.mean_in_flight,
            "littles_in_flight": self.littles_in_flight,
        }

    def to_frame(self) -> pd.DataFrame:
        """The row as a one-line DataFrame."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        return pd.DataFrame([self.to_dict()])


class Source:
    """Base: issue requests, stamp completions, integrate the number in flight."""

    name = "source"

    def __init__(self, env: simpy.Environment, system: MemorySystem) -> None:
        self.env = env
        self.system = system
        self.res = SourceResult(self.name, system.clock_MHz)
        #: bytes per sector of a request's mask (the device's l1.sector_bytes)
        self.sector_bytes = system.sector_bytes
        self._out = 0
        self._t_last = 0.0
        self._started = False
        self._on_known = self._known  # bound once: made per request otherwise

    def _issue(self, req: MemRequest) -> None:
        now = self.env.now
        r = self.res
        if r.requests == 0:
            r.t_start = now
            self._t_last = now
        r.in_flight_area += self._out * (now - self._t_last)
        self._t_last = now
        self._out += 1
        r.requests += 1
        if req.write:
            r.writes += 1
        else:
            r.reads += 1
        self.system.submit(req, self._on_known)

    def _known(self, req: MemRequest) -> None:
        """The completion time is decided: fire :meth:`_complete` then."""
        env = self.env
        now = env.now
        t = req.t_done or 0.0  # (never None: the system sets it before it calls back)
        env.timeout(t - now if t > now else 0.0, req).callbacks.append(self._complete)

    def _complete(self, ev: simpy.Event) -> None:
        now = self.env.now
        req: MemRequest = ev.value  # type: ignore[assignment]  # the Timeout's value
        r = self.res
        r.in_flight_area += self._out * (now - self._t_last)
        self._t_last = now
        self._out -= 1
        nbytes = self.sector_bytes * req.sectors.bit_count()
        r.bytes += nbytes
        latency = now - req.t_issue
        r.latencies.append(latency)
        if not req.write:
            r.read_latencies.append(latency)
        r.done_times.append(now)
        r.done_bytes.append(nbytes)
        if now > r.t_end:
            r.t_end = now
        self.on_complete(req)

    def on_complete(self, req: MemRequest) -> None:
        """Hook for closed-loop sources."""

    def start(self) -> Source:
        """Register the source's activity with the environment (once)."""
        if self._started:
            raise SimgpuError(f"{self.name}: already started")
        self._started = True
        self._start()
        return self

    def _start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def result(self) -> SourceResult:
        """The statistics so far."""
        return self.res


class PointerChase(Source):
    """One SM, one load at a time, each to the next line of a cyclic pseudo-random order."""

    name = "pointer_chase"

    def __init__(
        self,
        env: simpy.Environment,
        system: MemorySystem,
        *,
        footprint_bytes: int,
        n_loads: int,
        sm: int = 0,
        stride_bytes: int = 128,
        seed: int = 0,
        warm_loads: int | None = None,
        cache_op: str = "ca",
    ) -> None:
        super().__init__(env, system)
        sb = system.sector_bytes
        if stride_bytes <= 0 or stride_bytes % sb:
            raise SimgpuError(
                f"pointer chase: stride_bytes = {stride_bytes}, expected k x {sb} (sector_bytes)"
            )
        if footprint_bytes < stride_bytes:
            raise SimgpuError(
                f"pointer chase: footprint_bytes = {footprint_bytes}, expected >= stride"
                f" ({stride_bytes})"
            )
        if n_loads <= 0:
            raise SimgpuError(f"pointer chase: n_loads = {n_loads}, expected > 0")
        self.n_elems = footprint_bytes // stride_bytes
        self.stride = stride_bytes
        self.n_loads = n_loads
        self.sm = sm
        self.seed = seed
        self.cache_op = cache_op
        self.line_bytes = system.line_bytes
        #: functional warm-up: by default one lap, capped at 1.5x the lines the caches hold
        #: (LRU keeps only the most recent lines, so a longer warm-up changes nothing)
        cap = 3 * (system.l2.spec.size_bytes + system.l1_bytes) // (2 * system.line_bytes)
        self.warm_loads = min(self.n_elems, cap) if warm_loads is None else warm_loads
        self._order: Iterator[int] = iter(())
        self._left = 0  # loads still to issue

    def _addr(self, k: int) -> tuple[int, int]:
        a = k * self.stride
        line = a - a % self.line_bytes
        return line, 1 << ((a % self.line_bytes) // self.sector_bytes)

    def _start(self) -> None:
        order = cyclic_order(self.n_elems, self.seed)
        if self.warm_loads:
            lines = []
            for _ in range(self.warm_loads):
                line, _sec = self._addr(next(order))
                lines.append(line)
            self.system.warm(self.sm, lines)
        self._order = order
        self._left = self.n_loads
        self._issue_next()

    def _issue_next(self) -> None:
        """Issue the next load of the chain (each one when the previous one completes)."""
        if self._left == 0:
            return
        self._left -= 1
        line, sec = self._addr(next(self._order))
        self._issue(MemRequest(self.sm, line, sectors=sec, cache_op=self.cache_op))

    def on_complete(self, req: MemRequest) -> None:
        self._issue_next()


#: assumption: warming 1.2 x the lines the caches hold (one lap when the footprint is smaller)
#: leaves the tags as a full lap would: LRU keeps only the most recent lines.
WARM_FACTOR = 1.2


def run_pointer_chase(
    spec: DeviceSpec,
    footprint_bytes: int,
    *,
    n_loads: int,
    stride_bytes: int = 128,
    cache_op: str = "ca",
    seed: int = 0,
) -> tuple[SourceResult, MemorySystem]:
    """A warmed pointer chase on a fresh memory system of ``spec``: its result and the system.

    The chase the latency ladder and ``simgpu validate`` time: one SM, a functional warm-up of
    :data:`WARM_FACTOR` x the cached lines, then ``n_loads`` timed dependent loads.
    """
    env = simpy.Environment()
    system = build_system(env, spec)
    warm = min(footprint_bytes // stride_bytes,
               int(WARM_FACTOR * (spec.l2.size_bytes + system.l1_bytes) // system.line_bytes))
    chase = PointerChase(env, system, footprint_bytes=footprint_bytes, n_loads=n_loads,
                         stride_bytes=stride_bytes, seed=seed, warm_loads=warm,
                         cache_op=cache_op)
    chase.start()
    with relaxed_gc():  # the warmed tags are long-lived: keep them out of the collector's scans
        env.run()
    return chase.result(), system


class _ClosedLoop(Source):
    """``occupancy`` requests in flight per SM; each completion issues the next request."""

    def __init__(
        self,
        env: simpy.Environment,
        system: MemorySystem,
        *,
        n_requests: int,
        occupancy: int,
        sms: list[int] | None,
        read_fraction: float,
        cache_op: str,
        sectors: int,
    ) -> None:
        super().__init__(env, system)
        if n_requests <= 0 or occupancy <= 0:
            raise SimgpuError(
                f"{self.name}: n_requests = {n_requests}, occupancy = {occupancy};"
                " expected both > 0"
            )
        if not 0.0 <= read_fraction <= 1.0:
            raise SimgpuError(f"{self.name}: read_fraction = {read_fraction}, expected 0..1")
        self.n_requests = n_requests
        self.occupancy = occupancy
        self.sms = list(range(len(system.l1))) if sms is None else list(sms)
        self.read_fraction = read_fraction
        self.cache_op = cache_op
        self.sectors = sectors
        self._next = 0
        self._nw = 0  # writes issued so far

    def _is_write(self, i: int) -> bool:
        w = 1.0 - self.read_fraction
        return int((i + 1) * w + 1e-9) > int(i * w + 1e-9)

    def _line(self, k: int, write: bool) -> int:  # pragma: no cover - overridden
        """Address of the k-th read (or k-th write)."""
        raise NotImplementedError

    def _issue_next(self, sm: int) -> None:
        i = self._next
        if i >= self.n_requests:
            return
        self._next = i + 1
        write = self._is_write(i)
        k = self._nw if write else i - self._nw
        if write:
            self._nw += 1
        req = MemRequest(sm, self._line(k, write), sectors=self.sectors, write=write,
                         cache_op=self.cache_op)
        self._issue(req)

    def on_complete(self, req: MemRequest) -> None:
        self._issue_next(req.sm)

    def _start(self) -> None:
        for _k in range(self.occupancy):
            for sm in self.sms:
                self._issue_next(sm)


class Stream(_ClosedLoop):
    """Consecutive lines; ``op`` "read", "write", "copy" (read a, write b) or a read mix."""

    name = "stream"

    def __init__(
        self,
        env: simpy.Environment,
        system: MemorySystem,
        *,
        n_lines: int,
        occupancy: int = 8,
        op: str = "read",
        read_fraction: float | None = None,
        sms: list[int] | None = None,
        base: int = 0,
        cache_op: str = "cg",
    ) -> None:
        fractions = {"read": 1.0, "write": 0.0, "copy": 0.5}
        if op not in fractions:
            raise SimgpuError(f"stream: op = {op!r}, expected read, write or copy")
        rf = fractions[op] if read_fraction is None else read_fraction
        super().__init__(env, system, n_requests=n_lines, occupancy=occupancy, sms=sms,
                         read_fraction=rf, cache_op=cache_op, sectors=system.full_line)
        self.base = base
        self.line_bytes = system.line_bytes
        # writes go to a second array beyond the reads (copy: b[i] = a[i])
        self.write_base = base + (n_lines + 1) * self.line_bytes

    def _line(self, i: int, write: bool) -> int:
        return (self.write_base if write else self.base) + i * self.line_bytes


class RandomAccess(_ClosedLoop):
    """Uniformly random lines of a footprint (seeded)."""

    name = "random"

    def __init__(
        self,
        env: simpy.Environment,
        system: MemorySystem,
        *,
        footprint_bytes: int,
        n_requests: int,
        occupancy: int = 8,
        read_fraction: float = 1.0,
        sms: list[int] | None = None,
        sectors: int = 1,
        seed: int = 0,
        cache_op: str = "cg",
    ) -> None:
        super().__init__(env, system, n_requests=n_requests, occupancy=occupancy, sms=sms,
                         read_fraction=read_fraction, cache_op=cache_op, sectors=sectors)
        self.n_lines = max(1, footprint_bytes // system.line_bytes)
        self.rng = random.Random(seed)
        self.line_bytes = system.line_bytes

    def _line(self, i: int, write: bool) -> int:
        return self.rng.randrange(self.n_lines) * self.line_bytes


class Paced(Source):
    """Open loop: ``batch`` line requests every ``interval_cycles``, round-robin over SMs.

    Addresses are consecutive lines (reads from one array, writes to another), so the DRAM
    sees streaming traffic at the chosen rate: offered bandwidth = batch x line / interval.
    """

    name = "paced"

    def __init__(
        self,
        env: simpy.Environment,
        system: MemorySystem,
        *,
        offered_GBps: float,
        n_requests: int,
        read_fraction: float = 1.0,
        sms: list[int] | None = None,
        cache_op: str = "cg",
        base: int = 0,
        batch: int | None = None,
    ) -> None:
        super().__init__(env, system)
        if offered_GBps <= 0 or n_requests <= 0:
            raise SimgpuError(
                f"paced: offered_GBps = {offered_GBps}, n_requests = {n_requests};"
                " expected both > 0"
            )
        if not 0.0 <= read_fraction <= 1.0:
            raise SimgpuError(f"paced: read_fraction = {read_fraction}, expected 0..1")
        self.line_bytes = system.line_bytes
        bytes_per_cycle = offered_GBps * 1e9 / (system.clock_MHz * 1e6)
        # assumption: batches of whole requests spaced >= 8 cycles keep the event count low
        # without bunching (8 cycles is far below any memory latency here)
        self.batch = batch or max(1, round(8 * bytes_per_cycle / self.line_bytes))
        self.interval = self.batch * self.line_bytes / bytes_per_cycle
        self.n_requests = n_requests
        self.read_fraction = read_fraction
        self.sms = list(range(len(system.l1))) if sms is None else list(sms)
        self.cache_op = cache_op
        self.base = base
        self.write_base = base + (n_requests + 1) * self.line_bytes
        self.full_line = system.full_line

    def _start(self) -> None:
        self.env.process(self._run())

    def _run(self) -> Any:
        w = 1.0 - self.read_fraction
        i = 0
        n_sm = len(self.sms)
        nw = 0
        while i < self.n_requests:
            for _ in range(min(self.batch, self.n_requests - i)):
                write = int((i + 1) * w + 1e-9) > int(i * w + 1e-9)
                if write:  # k-th write to b[k], k-th read from a[k]: two sequential streams
                    line = self.write_base + nw * self.line_bytes
                    nw += 1
                else:
                    line = self.base + (i - nw) * self.line_bytes
                self._issue(MemRequest(self.sms[i % n_sm], line, sectors=self.full_line,
                                       write=write, cache_op=self.cache_op))
                i += 1
            yield self.env.timeout(self.interval)
