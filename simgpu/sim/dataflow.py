"""Systolic-array (dataflow) accelerator: folds, fill/drain, double-buffered SRAM, DRAM backing.

A GEMM ``C[M, N] = A[M, K] @ B[K, N]`` is mapped on an ``R x C`` array of PEs as SCALE-Sim
(Samajdar et al., ISPASS 2020) maps it. Each dataflow keeps one operand in the PEs and streams
another; with ``Sr x Sc`` the spatial extent and ``T`` the temporal one:

==========  =======  =======  =====  ====================================================
dataflow     Sr       Sc       T      cycles of one fold (fill + stream + drain)
==========  =======  =======  =====  ====================================================
os (out)     M        N        K      T + R + C - 2
ws (weight)  K        N        M      2R + C + T - 2  (R cycles to load the weights)
is (input)   K        M        N      2R + C + T - 2  (R cycles to load the inputs)
==========  =======  =======  =====  ====================================================

and ``ceil(Sr / R) x ceil(Sc / C)`` folds run one after the other, column folds outermost:
``compute_cycles = folds x cycles_per_fold``. These are the lengths of SCALE-Sim's demand
matrices (``tests/test_scalesim_*`` compares them with the ``scalesim`` package).

Memory: the operands live in the backing store (the device's ``[dram]``, modelled by
:mod:`simgpu.sim.hbm`: refresh-limited peak bandwidth and unloaded latency). Each fold needs its
blocks of A and B in SRAM; a block stays in SRAM for the next fold when the working half of
its buffer can hold what is reused, otherwise it is fetched again. With double buffering the
fetch of fold ``i + 1`` overlaps the computation of fold ``i``; the array stalls when a fetch
(or the drain of outputs) takes longer than a fold. The fold loop is plain arithmetic on
"next free" counters (no SimPy events are needed: nothing in it branches on timing).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import simpy

from simgpu.devices.dataflow import DATAFLOWS, DataflowSpec
from simgpu.devices.spec import DramSpec
from simgpu.errors import SimgpuError
from simgpu.sim import hbm

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FoldPlan",
    "DataflowResult",
    "fold_plan",
    "backing_store",
    "stream_bandwidth_GBps",
    "simulate_gemm",
    "simulate_workload",
    "scalesim_compute_cycles",
]


@dataclass(frozen=True)
class FoldPlan:
    """How a GEMM folds onto the array under one dataflow (no memory effects)."""

    dataflow: str
    rows: int
    cols: int
    Sr: int
    Sc: int
    T: int
    row_folds: int
    col_folds: int
    cycles_per_fold: int

    @property
    def folds(self) -> int:
        """Folds in all."""
        return self.row_folds * self.col_folds

    @property
    def compute_cycles(self) -> int:
        """Cycles of all folds back to back (fill, stream and drain of each)."""
        return self.folds * self.cycles_per_fold

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates (Sr x Sc x T = M x N x K)."""
        return self.Sr * self.Sc * self.T

    @property
    def mapping_efficiency(self) -> float:
        """Average fraction of PEs holding a stationary element (SCALE-Sim's mapping efficiency)."""
        return self.Sr * self.Sc / (self.folds * self.rows * self.cols)

    @property
    def utilization(self) -> float:
        """Useful MACs over PE-cycles of the compute time."""
        return self.macs / (self.rows * self.cols * self.compute_cycles)


def _check_shape(M: int, N: int, K: int) -> None:
    for name, value in (("M", M), ("N", N), ("K", K)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SimgpuError(f"GEMM shape: {name} = {value!r}, expected an integer >= 1")


def fold_plan(rows: int, cols: int, M: int, N: int, K: int, dataflow: str) -> FoldPlan:
    """The fold structure of ``M x N x K`` on an ``rows x cols`` array (table in the module doc)."""
    _check_shape(M, N, K)
    if dataflow not in DATAFLOWS:
        raise SimgpuError(f"dataflow = {dataflow!r}, expected one of {', '.join(DATAFLOWS)}")
    if rows < 1 or cols < 1:
        raise SimgpuError(f"array {rows}x{cols}: expected at least 1x1 PEs")
    if dataflow == "os":
        Sr, Sc, T = M, N, K
        per_fold = T + rows + cols - 2
    elif dataflow == "ws":
        Sr, Sc, T = K, N, M
        per_fold = 2 * rows + cols + T - 2
    else:
        Sr, Sc, T = K, M, N
        per_fold = 2 * rows + cols + T - 2
    return FoldPlan(
        dataflow=dataflow,
        rows=rows,
        cols=cols,
        Sr=Sr,
        Sc=Sc,
        T=T,
        row_folds=math.ceil(Sr / rows),
        col_folds=math.ceil(Sc / cols),
        cycles_per_fold=per_fold,
    )


@dataclass(frozen=True)
class BackingStore:
    """What the array sees of its DRAM: bytes per array cycle and first-access latency."""

    bytes_per_cycle: float
    latency_cycles: float
    source: str


#: Bytes streamed through the HBM model to measure its sustained read bandwidth: 4 MiB is
#: thousands of 128-B lines per pseudo-channel (long enough for the FR-FCFS controller to reach
#: steady state and to include refreshes on these parts, whose tREFI is a few microseconds).
STREAM_SAMPLE_BYTES = 4 * 2**20


@functools.lru_cache(maxsize=64)
def stream_bandwidth_GBps(dram: DramSpec, sample_bytes: int = STREAM_SAMPLE_BYTES) -> float:
    """Sustained sequential-read bandwidth of ``dram`` in the :class:`simgpu.sim.hbm.HBM` model.

    Streams ``sample_bytes`` in requests of the controller's interleave (consecutive bytes kept
    in one row, :attr:`simgpu.sim.hbm.HBMConfig.interleave_bytes`) through the discrete-event
    model, all queued at time 0, and divides by the time the last one returns. Cached per DRAM
    table (a run takes about half a second).
    """
    clock_MHz = 1e6 / dram.timing.tCK_ps  # count time in command clocks
    env = simpy.Environment()
    memory = hbm.HBM(env, dram, clock_MHz)
    chunk = memory.cfg.interleave_bytes
    if sample_bytes < chunk:
        raise SimgpuError(
            f"stream sample of {sample_bytes} B: expected at least one {chunk}-B request"
        )
    last = [0.0]

    def done(t: float) -> None:
        last[0] = max(last[0], t)

    for addr in range(0, sample_bytes, chunk):
        memory.submit(addr, chunk, False, 0.0, done)
    env.run()
    seconds = max(last[0], env.now) / (clock_MHz * 1e6)
    return sample_bytes / seconds / 1e9


def backing_store(spec: DataflowSpec, method: str = "closed") -> BackingStore:
    """The backing store of ``spec`` from the HBM/GDDR model of :mod:`simgpu.sim.hbm`.

    Bandwidth: ``method="closed"``: the refresh-limited peak (every pseudo-channel moving a
    burst per max(tBL, tCCD_S), less the refresh share); ``"des"``: the sustained streaming
    bandwidth of the discrete-event model (:func:`stream_bandwidth_GBps`). Latency: one read
    to a closed row (tRCD + tCL + tBL), converted from tCK to array cycles.
    """
    dram = spec.dram
    if method == "closed":
        gbps = hbm.refresh_limited_bandwidth_GBps(dram)
        source = "simgpu.sim.hbm closed forms (refresh-limited peak, closed-row read)"
    elif method == "des":
        gbps = stream_bandwidth_GBps(dram)
        source = "simgpu.sim.hbm discrete-event stream (sustained), closed-row read latency"
    else:
        raise SimgpuError(f"backing store method = {method!r}, expected 'closed' or 'des'")
    latency_ns = hbm.unloaded_read_tck(dram.timing, 1, "closed") * dram.timing.tCK_ns
    mhz = spec.array.clock_MHz
    return BackingStore(
        bytes_per_cycle=gbps * 1e3 / mhz,
        latency_cycles=latency_ns * mhz / 1e3,
        source=source,
    )


@dataclass(frozen=True)
class DataflowResult:
    """Outcome of one GEMM on a dataflow device (one row of a results table)."""

    device: str
    dataflow: str
    M: int
    N: int
    K: int
    folds: int
    cycles_per_fold: int
    compute_cycles: int
    cycles: float
    stall_cycles: float
    time_s: float
    utilization: float
    compute_utilization: float
    mapping_efficiency: float
    sram_read_bytes: float
    sram_write_bytes: float
    dram_read_bytes: float
    dram_write_bytes: float
    dram_bound_cycles: float
    energy_J: float
    energy_mac_J: float
    energy_sram_J: float
    energy_dram_J: float
    energy_static_J: float
    bound: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame."""
        import pandas as pd  # here: pandas adds ~0.5 s to start-up; only tables need it

        return pd.DataFrame([self.to_dict()])


def _traffic(
    plan: FoldPlan, spec: DataflowSpec
) -> tuple[list[float], list[float], dict[str, float]]:
    """DRAM bytes fetched before each fold, bytes written after each fold, and SRAM totals.

    Loop order is SCALE-Sim's: column folds outer, row folds inner. The operand that indexes
    the inner loop is re-fetched on every outer iteration unless all of it fits in the working
    half of its buffer; the operand of the outer loop is fetched once per outer iteration and
    reused by the inner folds when its block fits (otherwise fetched on every fold). In ws/is
    the inner loop runs over K, so output partial sums stay in the ofmap buffer when a column
    of outputs fits, and are otherwise written out and read back between K-folds.
    """
    w = spec.array.word_bytes
    R, C = plan.rows, plan.cols
    sram = spec.sram
    fetch: list[float] = []
    write: list[float] = []
    sram_rd = 0.0
    sram_wr = 0.0
    if plan.dataflow == "os":
        # inner: row folds over M (A blocks of R x K); outer: column folds over N (B blocks K x C)
        a_all_fits = plan.Sr * plan.T * w <= sram.working_bytes("ifmap")
        b_block_fits = plan.T * C * w <= sram.working_bytes("filter")
        for fc in range(plan.col_folds):
            c_used = min(C, plan.Sc - fc * C)
            for fr in range(plan.row_folds):
                r_used = min(R, plan.Sr - fr * R)
                a = r_used * plan.T * w if (fc == 0 or not a_all_fits) else 0.0
                b = plan.T * c_used * w if (fr == 0 or not b_block_fits) else 0.0
                fetch.append(a + b)
                write.append(r_used * c_used * w)
                sram_rd += (r_used + c_used) * plan.T * w
                sram_wr += r_used * c_used * w + a + b
        return fetch, write, {"sram_read": sram_rd, "sram_write": sram_wr}
    # ws: stationary B blocks (R x C of K x N), streamed A (T=M rows x R of K)
    # is: stationary A blocks (R x C of K x M), streamed B (T=N cols x R of K)
    streamed = "ifmap" if plan.dataflow == "ws" else "filter"
    stationary = "filter" if plan.dataflow == "ws" else "ifmap"
    del stationary  # each stationary block is fetched exactly once; its buffer only needs R x C
    stream_all_fits = plan.T * plan.Sr * w <= sram.working_bytes(streamed)
    psum_fits = plan.T * C * w <= sram.working_bytes("ofmap")
    for fc in range(plan.col_folds):
        c_used = min(C, plan.Sc - fc * C)
        for fr in range(plan.row_folds):
            r_used = min(R, plan.Sr - fr * R)
            stat = r_used * c_used * w
            stream = plan.T * r_used * w if (fc == 0 or not stream_all_fits) else 0.0
            psum_in = 0.0 if (fr == 0 or psum_fits) else plan.T * c_used * w
            fetch.append(stat + stream + psum_in)
            last = fr == plan.row_folds - 1
            write.append(plan.T * c_used * w if (last or not psum_fits) else 0.0)
            sram_rd += (r_used * c_used + plan.T * r_used + (plan.T * c_used if fr else 0)) * w
            sram_wr += plan.T * c_used * w + stat + stream + psum_in
    return fetch, write, {"sram_read": sram_rd, "sram_write": sram_wr}


def simulate_gemm(
    spec: DataflowSpec,
    M: int,
    N: int,
    K: int,
    dataflow: str | None = None,
    *,
    backing: BackingStore | str | None = None,
) -> DataflowResult:
    """Run ``M x N x K`` on ``spec``: compute, stalls, traffic and energy.

    ``backing``: a :class:`BackingStore` (tests use it to make bandwidth ample or starved), or
    the ``method`` of :func:`backing_store` ("closed", the default, or "des").
    """
    df = dataflow or spec.array.dataflow
    plan = fold_plan(spec.array.rows, spec.array.cols, M, N, K, df)
    store = (
        backing if isinstance(backing, BackingStore) else backing_store(spec, backing or "closed")
    )
    if store.bytes_per_cycle <= 0:
        raise SimgpuError(f"{spec.name}: backing bandwidth {store.bytes_per_cycle} B/cycle <= 0")
    bw = store.bytes_per_cycle
    fetch, write, sram = _traffic(plan, spec)
    per = plan.cycles_per_fold
    double = spec.sram.double_buffered
    n = len(fetch)
    # fold 0's operands are fetched before anything runs (first access pays the latency)
    dram_free = fetch[0] / bw  # the backing store's next free cycle (reads and writes share it)
    ready = dram_free + (store.latency_cycles if fetch[0] else 0.0)
    end_prev = 0.0  # compute end of the previous fold
    write_done_prev = 0.0  # outputs of fold i-1 fully written
    write_done_prev2 = 0.0  # outputs of fold i-2 fully written
    for i in range(n):
        # the ofmap half this fold writes into must have drained (two folds back if double)
        out_free = write_done_prev2 if double else write_done_prev
        start = max(end_prev, ready, out_free)
        end = start + per
        if i + 1 < n:
            # fold i+1's operands go to the buffer half fold i is not using: its fetch may start
            # with fold i when double-buffered, else only once fold i is done
            t0 = max(dram_free, start if double else end)
            dram_free = t0 + fetch[i + 1] / bw
            ready = dram_free
        w0 = max(dram_free, end)
        dram_free = w0 + write[i] / bw
        write_done_prev2, write_done_prev = write_done_prev, dram_free
        end_prev = end
    cycles = max(end_prev, write_done_prev)
    dram_rd = float(sum(fetch))
    dram_wr = float(sum(write))
    dram_bound = (dram_rd + dram_wr) / bw
    e = spec.energy
    time_s = cycles / (spec.array.clock_MHz * 1e6)
    e_mac = plan.macs * e.mac_pJ * 1e-12
    e_sram = (
        sram["sram_read"] * e.sram_read_pJ_per_byte + sram["sram_write"] * e.sram_write_pJ_per_byte
    ) * 1e-12
    e_dram = (dram_rd + dram_wr) * e.dram_pJ_per_byte * 1e-12
    e_static = e.static_W * time_s
    stall = cycles - plan.compute_cycles
    return DataflowResult(
        device=spec.name,
        dataflow=df,
        M=M,
        N=N,
        K=K,
        folds=plan.folds,
        cycles_per_fold=per,
        compute_cycles=plan.compute_cycles,
        cycles=cycles,
        stall_cycles=stall,
        time_s=time_s,
        utilization=plan.macs / (spec.array.pes * cycles),
        compute_utilization=plan.utilization,
        mapping_efficiency=plan.mapping_efficiency,
        sram_read_bytes=sram["sram_read"],
        sram_write_bytes=sram["sram_write"],
        dram_read_bytes=dram_rd,
        dram_write_bytes=dram_wr,
        dram_bound_cycles=dram_bound,
        energy_J=e_mac + e_sram + e_dram + e_static,
        energy_mac_J=e_mac,
        energy_sram_J=e_sram,
        energy_dram_J=e_dram,
        energy_static_J=e_static,
        bound="memory" if dram_bound > plan.compute_cycles else "compute",
    )


def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise SimgpuError(f"workload parameter {name!r} is missing (expected an integer >= 1)")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SimgpuError(f"workload parameter {name} = {value!r}, expected an integer >= 1")
    return value


def simulate_workload(spec: DataflowSpec, workload: str, params: dict[str, Any]) -> dict[str, Any]:
    """Entry point of ``simgpu simulate`` for dataflow devices.

    ``workload`` is "gemm" (params m, n, k, optional dataflow) or "gemv" (m, k: a GEMM with
    N = 1). Returns the :class:`DataflowResult` fields (``cycles``, ``time_s``,
    ``utilization``, traffic and energy) as a dict.
    """
    if not isinstance(spec, DataflowSpec):
        raise SimgpuError(f"{getattr(spec, 'name', spec)!r} is not a dataflow device")
    df = params.get("dataflow") or spec.array.dataflow
    if workload == "gemm":
        m, n, k = _int_param(params, "m"), _int_param(params, "n"), _int_param(params, "k")
    elif workload == "gemv":
        m, n, k = _int_param(params, "m"), 1, _int_param(params, "k")
    else:
        raise SimgpuError(
            f"workload {workload!r} on dataflow device {spec.name!r}: expected 'gemm' or 'gemv'"
        )
    result = simulate_gemm(spec, m, n, k, str(df)).to_dict()
    result["workload"] = workload
    return result


def scalesim_compute_cycles(rows: int, cols: int, M: int, N: int, K: int, dataflow: str) -> int:
    """Compute cycles of ``M x N x K`` as the ``scalesim`` package (SCALE-Sim v3) counts them.

    Runs SCALE-Sim's own compute model (``scalesim.compute.systolic_compute_{os,ws,is}``) on
    GEMM operand matrices laid out as its GEMM mode lays them (ifmap M x K, filter K x N) and
    returns the length of its demand matrices: the cycles its memory system replays, which
    it reports as total cycles when no stall occurs. (Its memory system is not run: in
    scalesim 3.0.0 it fails under NumPy 2 with "only 0-dimensional arrays can be converted".)
    ``scalesim`` is optional: ImportError if absent.
    """
    # here: scalesim is an optional dependency (and only this comparison needs numpy)
    import numpy as np
    from scalesim.compute.systolic_compute_is import systolic_compute_is
    from scalesim.compute.systolic_compute_os import systolic_compute_os
    from scalesim.compute.systolic_compute_ws import systolic_compute_ws
    from scalesim.scale_config import scale_config

    _check_shape(M, N, K)
    cfg = scale_config()
    cfg.array_rows, cfg.array_cols, cfg.df = rows, cols, dataflow
    cfg.force_valid()
    ifmap = np.arange(M * K).reshape(M, K)
    filt = np.arange(K * N).reshape(K, N) + 10_000_000  # SCALE-Sim's default filter offset
    ofmap = np.arange(M * N).reshape(M, N) + 20_000_000  # and ofmap offset
    classes = {"os": systolic_compute_os, "ws": systolic_compute_ws, "is": systolic_compute_is}
    if dataflow not in classes:
        raise SimgpuError(f"dataflow = {dataflow!r}, expected one of {', '.join(DATAFLOWS)}")
    compute = classes[dataflow]()
    compute.set_params(config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap)
    ifmap_demand, _, _ = compute.get_demand_matrices()
    return int(ifmap_demand.shape[0])
