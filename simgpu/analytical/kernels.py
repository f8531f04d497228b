"""Closed forms for the simple kernels: roofline, STREAM, pointer chase, PCIe copies, transpose,
reduction and GEMV. Each returns a DataFrame with ``time_s``, ``bound``, ``power_W`` and
``energy_J`` (power from :mod:`simgpu.analytical.power`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simgpu.analytical import power as pw
from simgpu.analytical.params import DeviceParams
from simgpu.arch.hostlink import LinkParams, bidir_seconds, copy_seconds
from simgpu.errors import SimgpuError

#: Arrays touched per STREAM op (reads, writes): read a; write a; copy a->b; scale a->b;
#: triad a + s*b -> c (McCalpin's STREAM counting, as the calibration stream table).
STREAM_ARRAYS = {"read": (1, 0), "write": (0, 1), "copy": (1, 1), "scale": (1, 1), "triad": (2, 1)}


def _frame(columns: dict[str, Any]) -> Any:
    n = max(np.size(v) for v in columns.values())
    return pd.DataFrame({k: np.broadcast_to(np.asarray(v), (n,)) for k, v in columns.items()})


def _memory_time(
    p: DeviceParams, l2_bytes: np.ndarray, dram_bytes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    t_l2 = l2_bytes / (p.l2_bandwidth_GBps * 1e9)
    t_dram = dram_bytes / (p.dram_bandwidth_GBps * 1e9)
    return np.maximum(t_l2, t_dram), np.where(t_dram >= t_l2, "dram", "l2").astype(object)


def _finish(
    p: DeviceParams,
    busy: np.ndarray,
    bound: np.ndarray,
    events: dict[str, np.ndarray],
    kind: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Time (launch overhead and first DRAM latency plus ``busy``), bound, power, energy and
    power model. A call of a ``kind`` for which the device file has a harness call floor
    (``host_link.kernel_call_floor_us``) takes at least that long (bound "host")."""
    overhead = p.launch_overhead_s + p.dram_latency_ns * 1e-9
    time_s = overhead + busy
    bound = np.where(overhead > busy, "launch", bound).astype(object)
    floor = p.kernel_floor_s.get(kind, 0.0) if kind is not None else 0.0
    if floor:
        bound = np.where(floor > time_s, "host", bound).astype(object)
        time_s = np.maximum(time_s, floor)
    watts, energy, model = pw.power(p, events, time_s, busy / time_s)
    return time_s, bound, watts, energy, model


def roofline(
    spec: Any,
    flops: Any,
    dram_bytes: Any,
    dtype: str = "fp32",
    *,
    l2_bytes: Any = 0.0,
    l1_bytes: Any = 0.0,
) -> Any:
    """Roofline per compute unit and memory level: time = max(work / rate) over the roofs.

    Columns: ``t_compute_s, t_l1_s, t_l2_s, t_dram_s, time_s`` (no launch overhead),
    ``attainable_TFLOPS``, ``arithmetic_intensity`` (FLOP per DRAM byte) and ``bound``.
    """
    p = DeviceParams.from_spec(spec)
    if dtype not in p.peak_TFLOPS:
        raise SimgpuError(f"roofline: dtype {dtype!r} unknown, expected {list(p.peak_TFLOPS)}")
    f, d, l2, l1 = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (flops, dram_bytes, l2_bytes, l1_bytes))
    )
    roofs = np.stack(
        [
            f / p.peak_flops(dtype),
            l1 / (p.l1_bytes_per_cycle * p.sm_count * p.clock_hz),
            l2 / (p.l2_bandwidth_GBps * 1e9),
            d / (p.dram_bandwidth_GBps * 1e9),
        ]
    )
    t = roofs.max(axis=0)
    names = np.array(["compute", "l1", "l2", "dram"], dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _frame(
            {
                "flops": f,
                "dram_bytes": d,
                "t_compute_s": roofs[0],
                "t_l1_s": roofs[1],
                "t_l2_s": roofs[2],
                "t_dram_s": roofs[3],
                "time_s": t,
                "attainable_TFLOPS": np.where(t > 0, f / t / 1e12, 0.0),
                "arithmetic_intensity": np.where(d > 0, f / d, np.inf),
                "bound": names[roofs.argmax(axis=0)],
            }
        )


def stream(spec: Any, op: str, n_elements: Any, elem_bytes: int = 4) -> Any:
    """STREAM kernel: bytes moved / the bandwidth of the level that holds the arrays.

    Arrays that together fit in L2 are served by L2 when the kernel runs back to back (as the
    calibration benchmark times it); larger ones stream from DRAM. Writes are counted once (the
    sectored L2 needs no read-for-ownership for whole 32-B sectors).
    """
    p = DeviceParams.from_spec(spec)
    if op not in STREAM_ARRAYS:
        raise SimgpuError(f"stream: op {op!r} unknown, expected one of {list(STREAM_ARRAYS)}")
    reads, writes = STREAM_ARRAYS[op]
    n = np.asarray(n_elements, dtype=float)
    array_B = n * elem_bytes
    moved = array_B * (reads + writes)
    in_l2 = moved <= p.l2_size_B
    dram = np.where(in_l2, 0.0, moved)
    busy, bound = _memory_time(p, moved, dram)
    events = {"l2_byte": moved, "dram_byte": dram, "l1_byte": moved}
    time_s, bound, watts, energy, model = _finish(p, busy, bound, events, "stream")
    return _frame(
        {
            "op": op,
            "n_elements": n,
            "array_B": array_B,
            "bytes_moved": moved,
            "level": np.where(in_l2, "L2", "DRAM"),
            "time_s": time_s,
            "bandwidth_GBps": moved / time_s / 1e9,
            "bound": bound,
            "power_W": watts,
            "energy_J": energy,
            "power_model": model,
        }
    )


def pointer_chase(spec: Any, footprint_B: Any, stride_B: Any) -> Any:
    """Latency per dependent load of a random cyclic chase (L1-cached loads).

    A cyclic chase over a footprint larger than an LRU cache misses on every line, so the level
    is the first one whose capacity holds the footprint. With a stride below the line size, the
    other loads to a line hit L1 (``line / stride - 1`` of every ``line / stride``). An L2 hit
    costs the near latency while the footprint fits the SM's near partition (its share of the
    L2: a line is filled into the partition of the SM that missed, as
    :class:`simgpu.sim.system.MemorySystem` does), and the far latency beyond it (the published
    latency curves step from a near to a far plateau before DRAM: docs/memory-system.md).
    Columns: ``latency_cycles``, ``latency_ns``, ``level``, ``time_s`` (one load).
    """
    p = DeviceParams.from_spec(spec)
    fp = np.asarray(footprint_B, dtype=float)
    st = np.asarray(stride_B, dtype=float)
    if np.any(st <= 0) or np.any(fp <= 0):
        raise SimgpuError("pointer_chase: footprint_B and stride_B must be > 0")
    fp, st = np.broadcast_arrays(fp, st)
    line = 128.0
    near = p.l2_latency_cycles
    far = p.l2_far_latency_cycles or near
    near_B = p.l2_size_B / max(p.l2_partitions, 1)
    dram_cycles = p.dram_latency_ns * p.clock_MHz / 1000.0
    miss_cycles = np.select(
        [fp <= p.l1_size_B, fp <= near_B, fp <= p.l2_size_B],
        [p.l1_latency_cycles, near, far],
        dram_cycles,
    )
    level = np.select([fp <= p.l1_size_B, fp <= p.l2_size_B], ["L1", "L2"], "DRAM")
    per_line = np.maximum(line / st, 1.0)
    cycles = (miss_cycles + (per_line - 1) * p.l1_latency_cycles) / per_line
    ns = cycles * 1000.0 / p.clock_MHz
    return _frame(
        {
            "footprint_B": fp,
            "stride_B": st,
            "level": level.astype(object),
            "latency_cycles": cycles,
            "latency_ns": ns,
            "time_s": ns * 1e-9,
            "bound": "latency",
        }
    )


def pcie_copy(spec: Any, n_bytes: Any, direction: str, pinned: bool = True) -> Any:
    """Host-device copy, the closed forms of the host link model (:mod:`simgpu.arch.hostlink`,
    the model :class:`simgpu.sim.pcie.HostLink` simulates): a fixed cost per copy plus the
    transfer at the device file's pinned rate; pageable copies staged by the host through pinned
    buffers; ``direction`` "bidir" moves ``n_bytes`` each way, the second copy issued after the
    first, both at the link's duplex share while they overlap.
    """
    if direction not in ("h2d", "d2h", "bidir"):
        raise SimgpuError(f"pcie_copy: direction {direction!r}, expected h2d, d2h or bidir")
    p = DeviceParams.from_spec(spec)
    link = LinkParams.from_spec(spec.host_link)
    n = np.asarray(n_bytes, dtype=float)
    ways = ("h2d", "d2h") if direction == "bidir" else (direction,)
    if direction == "bidir":
        seconds = np.vectorize(lambda b: bidir_seconds(link, b, pinned), otypes=[float])
    else:
        seconds = np.vectorize(lambda b: copy_seconds(link, b, direction, pinned),
                               otypes=[float])
    total = n * len(ways)
    time_s = seconds(n)
    fixed = max(link.latency[d] for d in ways) + (0.0 if pinned else link.pageable_latency)
    # what the time past the fixed cost goes to: the link, or the host's staging copy
    staged = not pinned and any(link.staging_rate(int(n.max(initial=0)), d) < link.bandwidth[d]
                                for d in ways)
    watts, energy, model = pw.power(p, {"pcie_byte": total}, time_s, np.zeros_like(time_s))
    return _frame(
        {
            "n_bytes": n,
            "direction": direction,
            "pinned": pinned,
            "time_s": time_s,
            "bandwidth_GBps": total / time_s / 1e9,
            "bound": np.where(time_s > 2 * fixed, "host staging" if staged else "pcie",
                              "latency"),
            "power_W": watts,
            "energy_J": energy,
            "power_model": model,
        }
    )


def transpose(spec: Any, n: Any, variant: str = "tiled") -> Any:
    """n x n float32 transpose. ``tiled`` moves 2 x 4 n^2 bytes at every level; ``naive`` reads
    coalesced but writes one 4-B word per 32-B sector, so L2 sees 32 B per written element
    (DRAM still sees whole sectors once L2 merges them, when a warp's 32 output lines fit).
    Each of those stores is a request of its own, and where the device file sets
    ``noc.slice_request_bytes`` a request occupies that many bytes of L2 bandwidth at least
    (one tag lookup and one line-wide data slot, as :mod:`simgpu.sim.noc` books it): the naive
    stores' time is counted in those slots (column ``l2_slot_bytes``)."""
    p = DeviceParams.from_spec(spec)
    if variant not in ("naive", "tiled"):
        raise SimgpuError(f"transpose: variant {variant!r}, expected naive or tiled")
    nn = np.asarray(n, dtype=float) ** 2
    moved = 8.0 * nn
    store = 32.0 if variant == "naive" else 4.0  # L2 bytes per element stored
    l2 = 4.0 * nn + store * nn
    # the tiled kernel's loads and stores are whole lines, its slots its bytes
    slot = max(store, p.l2_request_bytes) if variant == "naive" else store
    l2_slots = 4.0 * nn + slot * nn
    dram = np.where(moved <= p.l2_size_B, 0.0, moved)
    busy, bound = _memory_time(p, l2_slots, dram)
    events = {"l2_byte": l2, "dram_byte": dram, "l1_byte": l2}
    time_s, bound, watts, energy, model = _finish(p, busy, bound, events, "transpose")
    return _frame(
        {
            "n": np.asarray(n, dtype=float),
            "variant": variant,
            "bytes_moved": moved,
            "l2_bytes": l2,
            "l2_slot_bytes": l2_slots,
            "time_s": time_s,
            "bandwidth_GBps": moved / time_s / 1e9,
            "bound": bound,
            "power_W": watts,
            "energy_J": energy,
            "power_model": model,
        }
    )


def reduction(spec: Any, n: Any) -> Any:
    """Sum of n float32: one pass over 4 n bytes (atomics per block are negligible)."""
    p = DeviceParams.from_spec(spec)
    nb = 4.0 * np.asarray(n, dtype=float)
    dram = np.where(nb <= p.l2_size_B, 0.0, nb)
    busy, bound = _memory_time(p, nb, dram)
    time_s, bound, watts, energy, model = _finish(
        p, busy, bound, {"l2_byte": nb, "dram_byte": dram, "l1_byte": nb}, "reduction"
    )
    return _frame(
        {
            "n": np.asarray(n, dtype=float),
            "bytes_moved": nb,
            "time_s": time_s,
            "bandwidth_GBps": nb / time_s / 1e9,
            "bound": bound,
            "power_W": watts,
            "energy_J": energy,
            "power_model": model,
        }
    )


def gemv(spec: Any, m: Any, n: Any) -> Any:
    """y = A x, float32: 4 (m n + n + m) bytes, 2 m n FLOPs; x stays in L1/L2."""
    p = DeviceParams.from_spec(spec)
    m_, n_ = np.broadcast_arrays(np.asarray(m, dtype=float), np.asarray(n, dtype=float))
    moved = 4.0 * (m_ * n_ + n_ + m_)
    flops = 2.0 * m_ * n_
    dram = np.where(moved <= p.l2_size_B, 0.0, moved)
    t_mem, bound = _memory_time(p, moved, dram)
    t_c = flops / p.peak_flops("fp32")
    busy = np.maximum(t_mem, t_c)
    bound = np.where(t_c > t_mem, "compute", bound)
    events = {"l2_byte": moved, "dram_byte": dram, "l1_byte": moved, "ffma_flop": flops}
    time_s, bound, watts, energy, model = _finish(p, busy, bound, events, "gemv")
    return _frame(
        {
            "M": m_,
            "N": n_,
            "bytes_moved": moved,
            "flops": flops,
            "time_s": time_s,
            "bandwidth_GBps": moved / time_s / 1e9,
            "bound": bound,
            "power_W": watts,
            "energy_J": energy,
            "power_model": model,
        }
    )
