"""Timelines of a simulation as Chrome / Perfetto trace JSON (open in ui.perfetto.dev or
chrome://tracing).

A simulator component records what it was busy with, in SM cycles (``env.now``)::

    from simgpu.sim.timeline import Timeline

    tl = Timeline()
    tl.add("SM/0", "warp 3 LDG", start_cycles=120.0, dur_cycles=34.0, addr=0x7F00_0000_0000)
    tl.add("DRAM/ch5", "RD row 17", 410.0, 8.0, bank=2)
    tl.counter("L2", "hit rate", 1000.0, hit=0.93)
    tl.write("results/trace.json", clock_MHz=1980.0)

Tracks are strings. ``"GROUP/LANE"`` puts the lane under a group (a process row in the viewer,
with the lane as one of its threads): ``"SM/0"``, ``"SM/1"``, ``"L2/slice12"``,
``"DRAM/ch5"``, ``"PCIe/h2d"``. A track without ``/`` is a group with a single lane. Groups and
lanes appear in the order they were first used. Cycles become microseconds at ``clock_MHz``
when the file is written (the trace format counts time in microseconds).

:func:`add_hbm_commands` turns the command log of the DRAM model (:class:`simgpu.sim.hbm.HBM`
built with ``HBMConfig(log=True)``) into one track per pseudo-channel.
:func:`trace_requests` records every request of a memory system (:mod:`simgpu.sim`) without
touching the simulator: one interval per request, from issue to completion, on the issuing SM's
track, named by the level that served it, plus a per-level count of requests in flight.

Events are kept as tuples until :meth:`Timeline.write`; ``max_events`` bounds the memory a long
simulation may use: further events are counted, not kept, and the count is written to the
file's ``otherData``. The format is the Trace Event Format (Google, "Trace Event Format"
document): complete events ``"ph": "X"``, async begin/end pairs ``"b"``/``"e"`` for intervals that
overlap on one track, counters ``"ph": "C"``, instants ``"ph": "i"`` and
metadata ``"ph": "M"`` naming processes and threads.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

from simgpu.errors import SimgpuError
from simgpu.io import atomic_write_bytes

__all__ = ["Timeline", "TimelineError", "add_hbm_commands", "trace_requests"]


class TimelineError(SimgpuError):
    """An event with an impossible time, or a clock that is not a positive number."""


class Timeline:
    """Busy intervals, counters and instants on named tracks, in SM cycles."""

    def __init__(self, *, max_events: int = 2_000_000, name: str = "simgpu") -> None:
        if max_events < 0:
            raise TimelineError(f"max_events = {max_events}: expected >= 0")
        self.name = name
        self.max_events = max_events
        self.dropped = 0
        self._events: list[tuple[str, str, str, float, float, dict[str, Any]]] = []
        self._tracks: dict[str, tuple[int, int]] = {}
        self._groups: dict[str, int] = {}

    # -- recording ---------------------------------------------------------------------------
    def _track(self, track: str) -> tuple[int, int]:
        ids = self._tracks.get(track)
        if ids is None:
            if not isinstance(track, str) or not track:
                raise TimelineError(f"track {track!r}: expected a non-empty string")
            group, _, _lane = track.partition("/")
            pid = self._groups.setdefault(group, len(self._groups) + 1)
            tid = sum(1 for t in self._tracks if t.partition("/")[0] == group) + 1
            ids = self._tracks[track] = (pid, tid)
        return ids

    def _keep(self) -> bool:
        if len(self._events) >= self.max_events:
            self.dropped += 1
            return False
        return True

    @staticmethod
    def _check_time(what: str, value: float) -> float:
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise TimelineError(f"{what} = {value!r}: expected a finite number of cycles >= 0")
        return v

    def add(self, track: str, name: str, start_cycles: float, dur_cycles: float,
            **args: Any) -> None:
        """``track`` was busy with ``name`` from ``start_cycles`` for ``dur_cycles`` (SM
        cycles). ``args`` (JSON-able values) show in the viewer's detail pane."""
        start = self._check_time(f"{track}: {name}: start_cycles", start_cycles)
        dur = self._check_time(f"{track}: {name}: dur_cycles", dur_cycles)
        self._track(track)
        if self._keep():
            self._events.append(("X", track, str(name), start, dur, args))

    def add_overlapping(self, track: str, name: str, start_cycles: float, dur_cycles: float,
                        **args: Any) -> None:
        """Like :meth:`add`, for intervals that may overlap others on the same track (memory
        requests in flight): written as async begin/end pairs, which viewers stack."""
        start = self._check_time(f"{track}: {name}: start_cycles", start_cycles)
        dur = self._check_time(f"{track}: {name}: dur_cycles", dur_cycles)
        self._track(track)
        if self._keep():
            self._events.append(("b", track, str(name), start, dur, args))

    def counter(self, track: str, name: str, t_cycles: float, **values: float) -> None:
        """Counter values at ``t_cycles`` (drawn as a step chart, one series per value)."""
        t = self._check_time(f"{track}: {name}: t_cycles", t_cycles)
        if not values:
            raise TimelineError(f"{track}: counter {name!r} needs at least one value")
        self._track(track)
        if self._keep():
            self._events.append(("C", track, str(name), t, 0.0, values))

    def instant(self, track: str, name: str, t_cycles: float, **args: Any) -> None:
        """A moment on ``track`` (a barrier, a refresh, a kernel launch)."""
        t = self._check_time(f"{track}: {name}: t_cycles", t_cycles)
        self._track(track)
        if self._keep():
            self._events.append(("i", track, str(name), t, 0.0, args))

    def __len__(self) -> int:
        return len(self._events)

    @property
    def tracks(self) -> list[str]:
        """Track names in first-use order."""
        return list(self._tracks)

    def span_cycles(self) -> tuple[float, float]:
        """(first start, last end) over the kept events, in cycles ((0, 0) when empty)."""
        if not self._events:
            return 0.0, 0.0
        return (min(e[3] for e in self._events), max(e[3] + e[4] for e in self._events))

    def busy_cycles(self) -> dict[str, float]:
        """Sum of interval durations per track (overlaps counted twice)."""
        out: dict[str, float] = {t: 0.0 for t in self._tracks}
        for ph, track, _n, _s, dur, _a in self._events:
            if ph in ("X", "b"):
                out[track] += dur
        return out

    # -- writing -----------------------------------------------------------------------------
    def to_trace(self, clock_MHz: float) -> dict[str, Any]:
        """The Trace Event Format document (a dict) with times in microseconds."""
        clock = float(clock_MHz)
        if not math.isfinite(clock) or clock <= 0:
            raise TimelineError(f"clock_MHz = {clock_MHz!r}: expected a positive number")
        us = 1.0 / clock  # one cycle at clock_MHz lasts 1 / clock_MHz microseconds
        events: list[dict[str, Any]] = []
        for group, pid in self._groups.items():
            events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                           "args": {"name": group}})
            events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                           "args": {"sort_index": pid}})
        for track, (pid, tid) in self._tracks.items():
            lane = track.partition("/")[2] or track
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": lane}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                           "args": {"sort_index": tid}})
        for n, (ph, track, name, start, dur, args) in enumerate(self._events):
            pid, tid = self._tracks[track]
            ev: dict[str, Any] = {"ph": ph, "name": name, "pid": pid, "tid": tid,
                                  "ts": start * us}
            if ph == "b":
                ev.update(cat=track, id=n, args={"start_cycles": start, "dur_cycles": dur,
                                                   **args})
                events.append(ev)
                ev = {"ph": "e", "name": name, "pid": pid, "tid": tid, "cat": track, "id": n,
                      "ts": (start + dur) * us}
            elif ph == "X":
                ev["dur"] = dur * us
                ev["args"] = {"start_cycles": start, "dur_cycles": dur, **args}
            elif ph == "i":
                ev["s"] = "t"
                ev["args"] = {"t_cycles": start, **args}
            else:
                ev["args"] = args
            events.append(ev)
        return {
            "traceEvents": events,
            "displayTimeUnit": "ns",
            "otherData": {
                "generator": self.name,
                "clock_MHz": clock,
                "time_unit": "microseconds (ts, dur); cycles in args",
                "events": len(self._events),
                "dropped_events": self.dropped,
            },
        }

    def write(self, path: str | Path, clock_MHz: float) -> Path:
        """Write the trace JSON to ``path`` atomically (a ``.json.gz`` path is gzipped);
        return the path."""
        path = Path(path)
        data = json.dumps(self.to_trace(clock_MHz), default=_json_default,
                          separators=(",", ":")).encode()
        if path.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        atomic_write_bytes(path, data)
        return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return str(value)


def trace_requests(system: Any, timeline: Timeline, *, counters: bool = True) -> Any:
    """Record every request that ``system`` (a :class:`simgpu.sim.MemorySystem`, or anything
    with ``env`` and ``access(req) -> event``) serves from now on into ``timeline``.

    Each request becomes an interval on track ``"SM/<sm>"`` named ``"LD <level>"`` or
    ``"ST <level>"`` (``req.served_by``) with its line address and sectors as arguments; with
    ``counters``, track ``"memory"`` gets the number of requests in flight at every issue and
    completion. Returns the system (its ``access``, and ``submit`` where it has one, now
    record)."""
    inner = system.access
    inner_submit: Any = getattr(system, "submit", None)
    env = system.env
    state = {"in_flight": 0}

    def issued(req: Any) -> None:
        if counters:
            state["in_flight"] += 1
            timeline.counter("memory", "requests in flight", float(req.t_issue),
                             requests=state["in_flight"])

    def interval(req: Any) -> None:
        level = req.served_by or "?"
        t0 = float(req.t_issue)
        t1 = float(req.t_done) if req.t_done is not None else float(env.now)
        timeline.add_overlapping(f"SM/{req.sm}", f"{'ST' if req.write else 'LD'} {level}",
                                 t0, max(0.0, t1 - t0), line=hex(req.line_addr),
                                 sectors=req.sectors, space=req.space)

    def completed(_ev: Any = None) -> None:
        if counters:
            state["in_flight"] -= 1
            timeline.counter("memory", "requests in flight", float(env.now),
                             requests=state["in_flight"])

    def access(req: Any) -> Any:
        ev = inner(req)
        issued(req)

        def done(_ev: Any) -> None:
            interval(req)
            completed()

        ev.callbacks.append(done)
        return ev

    def submit(req: Any, on_known: Any) -> None:
        # the caller hears of the request when the system decides it, as without the
        # recording (a load decided as it issues needs no event, simgpu.sim.sm); the count of
        # requests in flight drops when it completes
        issued(req)

        def known(r: Any) -> None:
            interval(r)
            if counters:
                t = float(r.t_done) if r.t_done is not None else float(env.now)
                env.timeout(max(0.0, t - float(env.now))).callbacks.append(completed)
            on_known(r)

        inner_submit(req, known)

    system.access = access
    if inner_submit is not None:
        system.submit = submit
    if getattr(system, "store_many", None) is not None:
        system.store_many = None  # a warp's stores then go through submit(), one by one
    if getattr(system, "load_many", None) is not None:
        system.load_many = None  # and its loads
    return system


def add_hbm_commands(timeline: Timeline, hbm: Any, *, group: str = "DRAM") -> int:
    """Add the DRAM commands logged by ``hbm`` (a :class:`simgpu.sim.hbm.HBM` whose config has
    ``log=True``) to ``timeline``, one track ``"DRAM/pc<i>"`` per pseudo-channel; return the
    number of commands added.

    Each command lasts what it occupies, from the device's timing table: RD and WR their data
    burst (tBL), ACT the row opening (tRCD), PRE the precharge (tRP), REF the refresh (tRFC);
    tCK are converted to SM cycles with ``hbm.cycles_per_tck``."""
    t = hbm.t
    lasts = {"RD": t.tBL, "WR": t.tBL, "ACT": t.tRCD, "PRE": t.tRP, "REF": t.tRFC}
    cpt = float(hbm.cycles_per_tck)
    for tck, cmd, pc, bg, bank in hbm.log:
        timeline.add_overlapping(f"{group}/pc{pc}", str(cmd), tck * cpt,
                                 lasts.get(str(cmd), 1) * cpt, bank_group=bg, bank=bank)
    return len(hbm.log)
