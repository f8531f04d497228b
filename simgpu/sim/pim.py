"""Processing-in-memory: all-bank PIM commands on the HBM/GDDR model, and a GEMV mapper.

A PIM device (:class:`~simgpu.devices.pim.PimSpec`) is a DRAM with the same channels, banks,
rows and timing table as :mod:`simgpu.sim.hbm`, plus commands that act on every bank of a
(pseudo-)channel at once:

``ACTAB``  all-bank activate: opens the same row in every bank (tRCD before a MAC, tRAS before
           the precharge, tRC to the next one);
``MAC``    all-bank MAC: every unit reads one column (``column_bytes``) from its bank(s) and
           multiplies it lane-wise with an input register; spaced ``mac_interval_tCK``;
``PREAB``  all-bank precharge (tRTP after the last MAC, tRP before the next activate);
``WRIN``   host writes one column of the input vector into the units' input buffer
           (broadcast); spaced ``input_write_interval_tCK``;
``RDOUT``  host reads one ``readout_bytes`` burst of results; spaced ``readout_interval_tCK``;
``REF``    all-bank refresh every tREFI, tRFC long (at a row boundary: banks are precharged);
``MODE``   entering (and at the end leaving) the all-bank/PIM mode.

The **mapper** (:func:`map_gemv`) lays ``y = W x`` (W: M x K) out row-wise: every unit owns
whole output rows, so no unit needs another's partial sums. A unit works on a block of
``accumulator_registers`` rows at a time; the input vector goes through the input buffer in
chunks of ``input_buffer_bytes``; for each (row block, chunk) the unit's weights sit in
consecutive columns of its bank(s), ``banks_per_unit x row_bytes`` per activation. When the
matrix has too few rows to fill the units' open rows, groups of channels take slices of K
(``k_split``) and the host adds their partial results; the mapper also picks the loop order
(row blocks or input chunks outermost) and keeps the fastest schedule. Every
channel runs the same stream in lockstep (each has its own command bus), so the stream is
returned for one channel as run-length groups ``(command, count)``; :meth:`CommandStream.expand`
lists the commands one by one for small cases.

The **timing engine** (:func:`schedule`) places the groups in order on one channel: a command
issues at the earliest tCK that satisfies every constraint from the commands before it
(:func:`pim_timing_table`, built from :func:`simgpu.sim.hbm.timing_table` plus the PIM
spacings) and the one-command-per-tCK command bus. Inside a group only the command's own
spacing applies, so a group costs O(1) and a whole GPT decode step a few thousand groups.

The **host** side (:class:`PimDevice`) issues the stream as a SimPy process, then gathers the
results: the read-out bursts, plus (without an adder tree) the lane reduction on the host.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from simgpu.devices.pim import PimSpec
from simgpu.errors import SimgpuError
from simgpu.sim import hbm
from simgpu.sim.dataflow import stream_bandwidth_GBps

if TYPE_CHECKING:
    import pandas as pd
    import simpy

__all__ = [
    "COMMANDS",
    "PimConstraint",
    "pim_timing_table",
    "CommandStream",
    "map_gemv",
    "Schedule",
    "schedule",
    "GemvResult",
    "simulate_gemv",
    "host_stream_time_s",
    "PimDevice",
    "simulate_workload",
]

MODE, WRIN, ACTAB, MAC, PREAB, RDOUT, REF = "MODE", "WRIN", "ACTAB", "MAC", "PREAB", "RDOUT", "REF"
COMMANDS = (MODE, WRIN, ACTAB, MAC, PREAB, RDOUT, REF)


@dataclass(frozen=True)
class PimConstraint:
    """``following`` issues no earlier than ``tck`` after ``preceding`` on one channel."""

    preceding: str
    following: str
    tck: int
    name: str


def pim_timing_table(spec: PimSpec) -> list[PimConstraint]:
    """The all-bank command constraints of ``spec``, in tCK.

    Row and bank constraints are the DRAM's own, taken by name from
    :func:`simgpu.sim.hbm.timing_table`: an all-bank ACT/PRE obeys what a per-bank ACT/PRE
    obeys (tRCD, tRAS, tRP, tRC; a MAC is a column read, so tRTP). The PIM spacings come from
    ``[pim]``. Three couplings between the input buffer, the MAC and the read-out have no
    published figure; each is an assumption stated in ``name``. An all-bank ACT is one command
    on the bus (PIMSimulator and aim_simulator broadcast it), so tRRD and tFAW, which space
    activates of different banks, do not apply inside it.
    """
    t = spec.dram.timing
    base = {(c.preceding, c.following, c.scope): c for c in hbm.timing_table(t)}
    p = spec.pim

    def dram(pre: str, fol: str, scope: str) -> int:
        return base[(pre, fol, scope)].tck

    mac_data = t.tCL + t.tBL  # a column read's data reaches the unit after the read latency
    return [
        PimConstraint(ACTAB, MAC, dram("ACT", "RD", "bank"), "tRCD"),
        PimConstraint(ACTAB, PREAB, dram("ACT", "PRE", "bank"), "tRAS"),
        PimConstraint(ACTAB, ACTAB, dram("ACT", "ACT", "bank"), "tRC"),
        PimConstraint(MAC, PREAB, dram("RD", "PRE", "bank"), "tRTP"),
        PimConstraint(PREAB, ACTAB, dram("PRE", "ACT", "bank"), "tRP"),
        PimConstraint(PREAB, REF, dram("PRE", "REF", "channel"), "tRP"),
        PimConstraint(REF, ACTAB, dram("REF", "ACT", "channel"), "tRFC"),
        PimConstraint(MAC, MAC, p.mac_interval_tCK, "pim.mac_interval_tCK"),
        PimConstraint(WRIN, WRIN, p.input_write_interval_tCK, "pim.input_write_interval_tCK"),
        PimConstraint(RDOUT, RDOUT, p.readout_interval_tCK, "pim.readout_interval_tCK"),
        # assumption: an input column is usable once its write data is in (tCWL + tBL)
        PimConstraint(WRIN, MAC, t.tCWL + t.tBL, "tCWL+tBL (input write lands)"),
        # assumption: the input buffer is overwritten only after the last MAC read its operand
        PimConstraint(MAC, WRIN, mac_data, "tCL+tBL (last MAC operand read)"),
        # assumption: results are read once the last MAC's operand has arrived (tCL + tBL)
        PimConstraint(MAC, RDOUT, mac_data, "tCL+tBL (last MAC done)"),
        PimConstraint(
            RDOUT, WRIN, hbm.read_to_write_tck(t), "read-to-write bus turnaround (hbm model)"
        ),
        PimConstraint(WRIN, RDOUT, dram("WR", "RD", "channel"), "tCWL+tBL+tWTR_S"),
        PimConstraint(MODE, WRIN, 1, "command bus"),
    ]


@dataclass
class CommandStream:
    """The command stream of one (pseudo-)channel, as run-length groups, and its mapping."""

    groups: list[tuple[str, int]] = field(default_factory=list)
    channels: int = 1
    units_per_channel: int = 1
    rows_per_unit: int = 0
    row_blocks: int = 0
    chunks: int = 0
    macs_per_block_chunk: int = 0
    activations_per_block_chunk: int = 0
    input_loads: int = 0
    readouts: int = 0  # read-outs of a row block's results (partial sums in "chunks" order)
    order: str = "rows"
    k_split: int = 1
    M: int = 0
    K: int = 0

    def add(self, command: str, count: int = 1) -> None:
        """Append ``count`` commands (merged with the last group when it is the same command)."""
        if count <= 0:
            return
        if self.groups and self.groups[-1][0] == command:
            self.groups[-1] = (command, self.groups[-1][1] + count)
        else:
            self.groups.append((command, count))

    def counts(self) -> dict[str, int]:
        """Commands of each kind on one channel."""
        out = dict.fromkeys(COMMANDS, 0)
        for command, count in self.groups:
            out[command] += count
        return out

    def expand(self, limit: int = 1_000_000) -> Iterator[str]:
        """The commands one by one (refuses more than ``limit``)."""
        total = sum(count for _, count in self.groups)
        if total > limit:
            raise SimgpuError(f"command stream has {total} commands, more than limit={limit}")
        for command, count in self.groups:
            for _ in range(count):
                yield command


def map_gemv(
    spec: PimSpec,
    M: int,
    K: int,
    *,
    devices: int = 1,
    order: str | None = None,
    k_split: int | None = None,
) -> CommandStream:
    """Lay ``y = W x`` (W: M x K) across channels, units and rows; return one channel's stream.

    ``devices`` identical devices (stacks or cards) split the rows between them.
    ``k_split`` groups of channels each take a slice of K (all rows): the input buffer is
    broadcast within a channel, so a channel holds one slice; the host adds the groups'
    partial results. Worth it when M alone leaves the units' open rows mostly unused.
    ``None`` tries 1, 2, 4, ... up to the channel count and keeps the fastest. ``order``:

    * ``"rows"``: row blocks outermost; each block accumulates over all input chunks, so the
      input buffer is reloaded for every (block, chunk) unless the input fits it whole;
    * ``"chunks"``: input chunks outermost; each chunk is loaded once and every row block reads
      out its partial sums after it (the host adds the partials of the chunks);
    * ``None``: whichever of the two schedules faster on this device.
    """
    for name, value in (("M", M), ("K", K), ("devices", devices)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SimgpuError(f"GEMV on {spec.name}: {name} = {value!r}, expected an integer >= 1")
    channels = spec.pim_channels * devices
    if k_split is None:
        best: CommandStream | None = None
        best_t = math.inf
        split = 1
        while split <= channels and (split == 1 or math.ceil(K / split) >= spec.pim.lanes):
            if channels % split == 0:
                candidate = map_gemv(spec, M, K, devices=devices, order=order, k_split=split)
                t = schedule(spec, candidate, refresh=False).end_tck
                if t < best_t:
                    best, best_t = candidate, t
            split *= 2
        assert best is not None
        return best
    if isinstance(k_split, bool) or not isinstance(k_split, int) or k_split < 1:
        raise SimgpuError(f"GEMV k_split = {k_split!r}, expected an integer >= 1")
    if channels % k_split:
        raise SimgpuError(
            f"GEMV k_split = {k_split}: expected a divisor of the {channels} PIM channels"
        )
    if order is None:
        by_rows = map_gemv(spec, M, K, devices=devices, order="rows", k_split=k_split)
        if by_rows.chunks == 1:
            return by_rows  # the same stream either way
        by_chunks = map_gemv(spec, M, K, devices=devices, order="chunks", k_split=k_split)
        fast = schedule(spec, by_rows, refresh=False).end_tck
        return by_rows if fast <= schedule(spec, by_chunks, refresh=False).end_tck else by_chunks
    if order not in ("rows", "chunks"):
        raise SimgpuError(f"GEMV mapping order = {order!r}, expected 'rows' or 'chunks'")
    p = spec.pim
    units = spec.units * devices // k_split
    K_full, K = K, math.ceil(K / k_split)
    rows_per_unit = math.ceil(M / units)
    acc = p.accumulator_registers
    row_blocks = math.ceil(rows_per_unit / acc)
    chunk_elems = p.input_buffer_bytes // p.element_bytes
    chunks = math.ceil(K / chunk_elems)
    cols_per_act = p.banks_per_unit * spec.dram.row_bytes // p.column_bytes
    stream = CommandStream(
        channels=spec.pim_channels * devices,
        units_per_channel=spec.units_per_channel,
        rows_per_unit=rows_per_unit,
        row_blocks=row_blocks,
        chunks=chunks,
        order=order,
        k_split=k_split,
        M=M,
        K=K_full,
    )
    out_bytes = p.element_bytes if p.adder_tree else p.lanes * p.element_bytes
    loaded = -1  # the chunk now in the input buffer

    def block_chunk(block: int, chunk: int, read_out: bool) -> None:
        nonlocal loaded
        rows_here = min(acc, rows_per_unit - block * acc)
        elems = min(chunk_elems, K - chunk * chunk_elems)
        cols_in = math.ceil(elems * p.element_bytes / p.column_bytes)
        if chunk != loaded:
            stream.add(WRIN, cols_in)
            stream.input_loads += 1
            loaded = chunk
        macs = rows_here * cols_in  # one MAC per row per input column
        acts = math.ceil(macs / cols_per_act)
        if block == 0 and chunk == 0:
            stream.macs_per_block_chunk = macs
            stream.activations_per_block_chunk = acts
        left = macs
        for _ in range(acts):
            here = min(cols_per_act, left)
            stream.add(ACTAB)
            stream.add(MAC, here)
            stream.add(PREAB)
            left -= here
        if read_out:
            size = spec.units_per_channel * rows_here * out_bytes
            stream.add(RDOUT, math.ceil(size / p.readout_bytes))
            stream.readouts += 1

    stream.add(MODE)
    if order == "rows":
        for block in range(row_blocks):
            for chunk in range(chunks):
                block_chunk(block, chunk, read_out=chunk == chunks - 1)
    else:
        for chunk in range(chunks):
            for block in range(row_blocks):
                block_chunk(block, chunk, read_out=True)
    stream.add(MODE)
    return stream


@dataclass
class Schedule:
    """Placed command stream of one channel: times in tCK and per-command statistics."""

    end_tck: float
    mac_phase_tck: float  # sum over MAC groups of (count - 1) x spacing + 1
    refreshes: int
    counts: dict[str, int]
    first_tck: dict[str, float]
    last_tck: dict[str, float]


def schedule(spec: PimSpec, stream: CommandStream, *, refresh: bool = True) -> Schedule:
    """Place the groups of ``stream`` in order on one channel (see the module doc)."""
    t = spec.dram.timing
    table = pim_timing_table(spec)
    after: dict[str, list[tuple[str, int]]] = {c: [] for c in COMMANDS}
    spacing: dict[str, int] = {c: 1 for c in COMMANDS}
    for c in table:
        if c.preceding == c.following:
            spacing[c.following] = max(spacing[c.following], c.tck)
        else:
            after[c.following].append((c.preceding, c.tck))
    spacing[ACTAB] = 1  # an ACTAB group never repeats without a PREAB between
    last: dict[str, float] = {}
    first: dict[str, float] = {}
    bus = -1.0  # the last tCK the command bus carried a command
    mac_phase = 0.0
    refreshes = 0
    next_ref = float(t.tREFI)
    mode_half = spec.pim.mode_switch_tCK / 2
    for command, count in stream.groups:
        if command == ACTAB and refresh:
            # refresh falls due at a row boundary: the banks are precharged here
            while max(bus + 1, last.get(PREAB, -math.inf) + t.tRP) >= next_ref:
                t_ref = max(next_ref, bus + 1, last.get(PREAB, -math.inf) + t.tRP)
                last[REF] = t_ref
                bus = t_ref
                refreshes += 1
                next_ref += t.tREFI
        start = bus + 1
        if command == MODE:
            start = max(start, last.get(MODE, -math.inf) + 1)
            end = start + mode_half
            first.setdefault(MODE, start)
            last[MODE] = end
            bus = end
            continue
        for preceding, tck in after[command]:
            if preceding in last:
                start = max(start, last[preceding] + tck)
        if command in last:
            start = max(start, last[command] + spacing[command])
        end = start + (count - 1) * spacing[command]
        if command == MAC:
            mac_phase += end - start + 1
        first.setdefault(command, start)
        last[command] = end
        bus = end
    # the last read-out's data returns a read latency after its command
    end_tck = bus + 1
    if RDOUT in last:
        end_tck = max(end_tck, last[RDOUT] + t.tCL + t.tBL)
    return Schedule(
        end_tck=end_tck,
        mac_phase_tck=mac_phase,
        refreshes=refreshes,
        counts=stream.counts(),
        first_tck=first,
        last_tck=last,
    )


@dataclass(frozen=True)
class GemvResult:
    """One GEMV on a PIM device (a row of a results table)."""

    device: str
    M: int
    K: int
    devices: int
    order: str
    k_split: int
    channels: int
    units: int
    commands_per_channel: int
    mac_commands_per_channel: int
    cycles: float  # DRAM command clocks (tCK)
    time_s: float
    mac_bound_s: float  # MAC commands x spacing on one channel
    weight_bytes: float
    internal_bytes: float  # bytes read from the banks by the units
    host_bytes: float  # bytes crossing the device interface (input in, results out)
    host_flops: float  # lane reductions left to the host
    utilization: float  # useful MACs over peak MAC slots of all units in the time
    energy_J: float
    energy_act_J: float
    energy_mac_J: float
    energy_io_J: float
    energy_refresh_J: float
    energy_background_J: float
    refreshes: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        return pd.DataFrame([self.to_dict()])


def simulate_gemv(
    spec: PimSpec, M: int, K: int, *, devices: int = 1, refresh: bool = True
) -> GemvResult:
    """Map, schedule and cost ``y = W x`` (W: M x K, resident in the device) on ``spec``."""
    stream = map_gemv(spec, M, K, devices=devices)
    sched = schedule(spec, stream, refresh=refresh)
    p, e = spec.pim, spec.energy
    t_ns = spec.dram.timing.tCK_ns
    time_s = sched.end_tck * t_ns * 1e-9
    n = sched.counts
    ch = stream.channels
    upc = spec.units_per_channel
    banks = spec.banks_per_channel
    # energy, all channels
    e_act = n[ACTAB] * ch * banks * e.act_per_bank_pJ
    internal_bytes = n[MAC] * ch * upc * p.column_bytes
    e_mac = internal_bytes * 8 * e.column_read_internal_pJ_per_bit + n[MAC] * ch * upc * (
        p.lanes * e.mac_pJ + 2 * e.register_access_pJ
    )
    host_bytes = ch * (n[WRIN] * p.column_bytes + n[RDOUT] * p.readout_bytes)
    e_io = host_bytes * 8 * e.io_pJ_per_bit + ch * n[WRIN] * upc * e.register_access_pJ
    e_ref = sched.refreshes * ch * banks * e.act_per_bank_pJ
    e_bg = e.background_W * devices * time_s
    total = (e_act + e_mac + e_io + e_ref) * 1e-12 + e_bg
    partials = stream.order == "chunks"
    peak_slots = sched.end_tck / p.mac_interval_tCK * spec.units * devices * p.lanes
    return GemvResult(
        device=spec.name,
        M=M,
        K=K,
        devices=devices,
        order=stream.order,
        k_split=stream.k_split,
        channels=ch,
        units=spec.units * devices,
        commands_per_channel=sum(n.values()),
        mac_commands_per_channel=n[MAC],
        cycles=sched.end_tck,
        time_s=time_s,
        mac_bound_s=n[MAC] * p.mac_interval_tCK * t_ns * 1e-9,
        weight_bytes=float(M * K * p.element_bytes),
        internal_bytes=float(internal_bytes),
        host_bytes=float(host_bytes),
        host_flops=float(
            M * (0 if p.adder_tree else p.lanes - 1)
            + (M * (stream.chunks - 1) if partials else 0)
            + M * (stream.k_split - 1)
        ),
        utilization=M * K / peak_slots if peak_slots else 0.0,
        energy_J=total,
        energy_act_J=e_act * 1e-12,
        energy_mac_J=e_mac * 1e-12,
        energy_io_J=e_io * 1e-12,
        energy_refresh_J=e_ref * 1e-12,
        energy_background_J=e_bg,
        refreshes=sched.refreshes,
    )


def host_stream_time_s(
    spec: PimSpec, nbytes: float, *, devices: int = 1, method: str = "des"
) -> float:
    """Time for the host to read ``nbytes`` from the device the ordinary way (no PIM).

    Bandwidth of the same channels from the :mod:`simgpu.sim.hbm` model: ``"des"`` the
    sustained streaming rate of its discrete-event controller
    (:func:`simgpu.sim.dataflow.stream_bandwidth_GBps`), ``"closed"`` its refresh-limited
    peak; plus one unloaded read to a closed row. This is the baseline of HBM-PIM's published
    GEMV speedup: a processor streaming the matrix from the same memory.
    """
    dram = spec.dram
    if method == "des":
        gbps = stream_bandwidth_GBps(dram)
    elif method == "closed":
        gbps = hbm.refresh_limited_bandwidth_GBps(dram)
    else:
        raise SimgpuError(f"host stream method = {method!r}, expected 'des' or 'closed'")
    latency_ns = hbm.unloaded_read_tck(dram.timing, 1, "closed") * dram.timing.tCK_ns
    return nbytes / (gbps * devices * 1e9) + latency_ns * 1e-9


class PimDevice:
    """A PIM device in a SimPy environment: its DRAM (the :class:`~simgpu.sim.hbm.HBM` model,
    for single-bank traffic) and the host process that runs PIM kernels on it.

    ``env`` counts host cycles at ``clock_MHz`` (the GPU's SM clock when a GPU is the host).
    """

    def __init__(self, env: simpy.Environment, spec: PimSpec, clock_MHz: float) -> None:
        if not isinstance(spec, PimSpec):
            raise SimgpuError(f"PimDevice: {spec!r} is not a PIM device")
        self.env = env
        self.spec = spec
        self.clock_MHz = clock_MHz
        self.memory = hbm.HBM(env, spec.dram, clock_MHz)
        #: host cycles per DRAM command clock
        self.cycles_per_tck = spec.dram.timing.tCK_ps * clock_MHz / 1e6
        self.results: list[GemvResult] = []

    def gemv(self, M: int, K: int) -> simpy.Process:
        """Start a GEMV: the host issues the stream and waits until the read-out is back.

        The process's value is the :class:`GemvResult`; it lasts the schedule's length in host
        cycles. The lane reduction left to the host (``host_flops``) is not timed here: it is
        M x 15 adds, microseconds of GPU work at most, and belongs to the host's own model.
        """
        return self.env.process(self._gemv(M, K))

    def _gemv(self, M: int, K: int) -> Generator[simpy.Event, Any, GemvResult]:
        result = simulate_gemv(self.spec, M, K)
        yield self.env.timeout(result.cycles * self.cycles_per_tck)
        self.results.append(result)
        return result


def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise SimgpuError(f"workload parameter {name!r} is missing (expected an integer >= 1)")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SimgpuError(f"workload parameter {name} = {value!r}, expected an integer >= 1")
    return value


def simulate_workload(spec: PimSpec, workload: str, params: dict[str, Any]) -> dict[str, Any]:
    """Entry point of ``simgpu simulate`` for PIM devices.

    ``gemv`` (params m, k; optional devices): one matrix-vector product with W resident.
    ``gemm`` (m, n, k): n GEMVs one after the other (a PIM unit has no reuse across columns).
    The dict holds the :class:`GemvResult` fields, with ``cycles`` in DRAM command clocks.
    """
    if not isinstance(spec, PimSpec):
        raise SimgpuError(f"{getattr(spec, 'name', spec)!r} is not a PIM device")
    devices = _int_param(params, "devices", 1)
    if workload == "gemv":
        out = simulate_gemv(spec, _int_param(params, "m"), _int_param(params, "k"), devices=devices)
        result = out.to_dict()
    elif workload == "gemm":
        n = _int_param(params, "n")
        out = simulate_gemv(spec, _int_param(params, "m"), _int_param(params, "k"), devices=devices)
        result = out.to_dict()
        for key in ("cycles", "time_s", "mac_bound_s", "internal_bytes", "host_bytes"):
            result[key] = result[key] * n
        for key in [k for k in result if k.startswith("energy_")]:
            result[key] = result[key] * n
        result["N"] = n
    else:
        raise SimgpuError(
            f"workload {workload!r} on PIM device {spec.name!r}: expected 'gemv' or 'gemm'"
        )
    result["workload"] = workload
    result["clock_MHz"] = spec.clock_MHz
    return result
