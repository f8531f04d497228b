"""Fit device parameters to a calibration run and write a calibrated device file.

What each table determines:

``pchase``
    hit latency per level (the plateaus of latency versus footprint) and the capacity at each
    step. A plateau is a run of footprints whose neighbours differ by less than
    :data:`PLATEAU_TOLERANCE`; its level is the median of its lower-footprint half (at large
    footprints TLB misses add a slow creep that is not the cache's hit latency). A step between
    two plateaus is fitted by least squares with the hit-fraction model
    ``h(F) = min(1, C/F) ** k``, latency ``= h lo + (1 - h) hi``, which gives the capacity ``C``
    (and a sharpness ``k``; a true LRU cache on a cyclic walk has ``k`` -> infinity).
``stream``
    sustained DRAM bandwidth: the best of read/write/copy/triad on arrays at least four times L2.
``shared``
    shared-memory (L1) bandwidth per SM per cycle, conflict-free stride.
``cachebw``
    L2 read bandwidth (data re-read from L2 in one launch).
``pcie``
    copy time = latency + bytes / bandwidth per direction, fitted to pinned copies.
``launch``
    power with nothing running at operating clocks (static power).
``gemm`` (cuBLAS fp32 calls)
    the issue slots per FFMA the library's SIMT kernels lose beyond the counted instructions
    (:func:`fit_library_issue`), and the shortest time the harness measures a call of each dtype
    in (:func:`fit_library_floor`).
``stream``, ``reduction``, ``transpose``, ``gemv`` (simgpu's own kernels)
    the shortest time the harness measures a call of each kind in (:func:`fit_kernel_floor`).
``gemm`` with power
    energy per event (:func:`fit_gemm_energies`): non-negative least squares on
    ``P - P_static = sum_i e_i s_i n_i / t`` (event counts ``n_i`` of the analytical GEMM model,
    ``s_i`` the squared measured clock ratio for on-chip events), then refined so that the
    analytical model's own power prediction matches the measured power.

:func:`fit_run` returns a table of :class:`Fitted` values; :func:`write_calibrated_model`
writes ``models/<device>-cal-<run-id>.toml``: the base model's text with each applied value
replaced and its comment pointing at the run. Hand-written models are never modified, and an
existing calibrated file is never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from simgpu.analytical import power as pw
from simgpu.analytical.params import DeviceParams
from simgpu.calibrate.dataset import RunDir
from simgpu.calibrate.gemm_rows import estimate, library_floors, load_calibration_run
from simgpu.devices import DeviceSpec, loads
from simgpu.devices.spec import KERNEL_FLOOR_KINDS
from simgpu.errors import DatasetError, SimgpuError
from simgpu.io import OutputError, atomic_write_text, plain_name

#: Neighbouring points whose latencies differ by less than this belong to one plateau.
PLATEAU_TOLERANCE = 0.04
#: Arrays at least this many times the L2 size count as DRAM-resident for bandwidth.
DRAM_ARRAY_OVER_L2 = 4.0
#: Copies at least this large count as bandwidth-bound for the PCIe peak.
PCIE_LARGE_COPY_B = 16 << 20


@dataclass(frozen=True)
class Fitted:
    """One parameter fitted to a run."""

    name: str  # what it is, e.g. "L1 hit latency"
    key: str  # device-file key path it sets ("" if it has none)
    value: float
    unit: str
    low: float | None  # bounds the data allow (None where not meaningful)
    high: float | None
    source: str  # table and method
    applied: bool  # written into the calibrated device file
    note: str = ""


@dataclass(frozen=True)
class Plateau:
    """Indices ``[start, stop]`` (inclusive) of a flat run in a sorted latency curve."""

    start: int
    stop: int
    level: float


def find_plateaus(
    latency: Any, tolerance: float = PLATEAU_TOLERANCE, min_points: int = 2
) -> list[Plateau]:
    """Flat runs of a latency curve sorted by footprint (see the module docstring)."""
    lat = np.asarray(latency, dtype=float)
    if lat.ndim != 1 or len(lat) == 0:
        return []
    plateaus: list[Plateau] = []
    start = 0
    for i in range(1, len(lat) + 1):
        flat = i < len(lat) and abs(math.log(lat[i] / lat[i - 1])) < math.log1p(tolerance)
        if flat:
            continue
        if i - start >= min_points:
            half = lat[start : start + max(1, (i - start + 1) // 2)]
            plateaus.append(Plateau(start, i - 1, float(np.median(half))))
        start = i
    return plateaus


def fit_step(
    footprint: Any, latency: Any, lower: Plateau, upper: Plateau
) -> tuple[float, float, float, float]:
    """Capacity of the step between two plateaus: ``(C, k, C_low, C_high)`` in footprint units.

    ``C_low``/``C_high`` are the last footprint of the lower plateau and the next one measured:
    where the latency first departs from the plateau, without any model.
    """
    f = np.asarray(footprint, dtype=float)
    lat = np.asarray(latency, dtype=float)
    lo_f, hi_f = f[lower.stop], f[lower.stop + 1]
    sel = slice(lower.stop, upper.start + 1)
    fs, ls = f[sel], lat[sel]
    lo, hi = lower.level, upper.level

    def model(params: np.ndarray) -> np.ndarray:
        cap, k = math.exp(params[0]), params[1]
        h = np.minimum(1.0, cap / fs) ** k
        return h * lo + (1 - h) * hi

    def resid(params: np.ndarray) -> np.ndarray:
        return (model(params) - ls) / (hi - lo)

    best: Any = None
    for k0 in (1.0, 4.0, 16.0):
        for c0 in (lo_f, math.sqrt(lo_f * hi_f), hi_f):
            r = least_squares(
                resid,
                x0=[math.log(c0), k0],
                bounds=([math.log(lo_f * 0.5), 0.1], [math.log(f[upper.start]), 200.0]),
            )
            if best is None or r.cost < best.cost:
                best = r
    cap = math.exp(best.x[0])
    return cap, float(best.x[1]), float(lo_f), float(hi_f)


def _curve(df: pd.DataFrame, path: str) -> pd.DataFrame:
    sel = df[df["path"] == path]
    return sel.groupby("footprint_B", as_index=False)[["latency_cycles", "latency_ns"]].median()


def fit_latency_ladder(df: pd.DataFrame, spec: DeviceSpec, clock_MHz: float) -> list[Fitted]:
    """Hit latencies and capacities from a ``pchase`` table."""
    out: list[Fitted] = []
    src = "pchase"
    ca, cg = _curve(df, "ca"), _curve(df, "cg")
    if len(ca) >= 4:
        pl = find_plateaus(ca["latency_cycles"].to_numpy())
        if len(pl) >= 2:
            l1 = pl[0]
            out.append(Fitted("L1 hit latency", "l1.hit_latency_cycles", round(l1.level, 2),
                              "cycles", None, None, f"{src} ca: first plateau", True))
            cap, k, lo, hi = fit_step(ca["footprint_B"], ca["latency_cycles"], l1, pl[1])
            out.append(Fitted("L1 data capacity", "", round(cap / 1024, 1), "KiB",
                              lo / 1024, hi / 1024, f"{src} ca: step fit (k={k:.1f})", False,
                              "the L1 left to data beside the driver's shared carve-out; "
                              "l1.size_per_sm_KiB (the unified size) is kept"))
    curve = cg if len(cg) >= 4 else ca
    path = "cg" if curve is cg else "ca"
    pl = find_plateaus(curve["latency_cycles"].to_numpy())
    if path == "ca" and pl:
        pl = pl[1:]  # the first ca plateau is L1
    if len(pl) >= 2:
        near, dram = pl[0], pl[-1]
        middle = [p for p in pl[1:-1] if p.level > near.level * (1 + 2 * PLATEAU_TOLERANCE)]
        out.append(Fitted("L2 hit latency (near)", "l2.near_hit_latency_cycles",
                          round(near.level, 2), "cycles", None, None,
                          f"{src} {path}: first plateau", True))
        last_l2 = near
        if middle and spec.l2.partitions > 1:
            far = middle[0]
            out.append(Fitted("L2 hit latency (far)", "l2.far_hit_latency_cycles",
                              round(far.level, 2), "cycles", None, None,
                              f"{src} {path}: plateau between near L2 and DRAM", True))
            cap, k, lo, hi = fit_step(curve["footprint_B"], curve["latency_cycles"], near, far)
            out.append(Fitted("near-L2 capacity", "", round(cap / 2**20, 2), "MiB",
                              lo / 2**20, hi / 2**20, f"{src} {path}: step fit (k={k:.1f})",
                              False, "footprint an SM finds in its near L2 partition"))
            last_l2 = far
        cap, k, lo, hi = fit_step(curve["footprint_B"], curve["latency_cycles"], last_l2, dram)
        out.append(Fitted("L2 capacity", "", round(cap / 2**20, 2), "MiB", lo / 2**20,
                          hi / 2**20, f"{src} {path}: step fit (k={k:.1f})", False,
                          "footprint at which loads leave L2 for DRAM; l2.size_MiB (the "
                          "datasheet size, tied to slices x ways x line) is kept"))
        ns = dram.level * 1000.0 / clock_MHz
        out.append(Fitted("DRAM latency", "dram.unloaded_latency_ns", round(ns, 1), "ns",
                          None, None, f"{src} {path}: last plateau at {clock_MHz:g} MHz", True))
    shared = df[df["path"] == "shared"]
    if len(shared):
        out.append(Fitted("shared-memory latency", "l1.shared_latency_cycles",
                          round(float(shared["latency_cycles"].median()), 2), "cycles", None,
                          None, f"{src} shared: median", True))
    return out


def fit_bandwidths(run: RunDir, spec: DeviceSpec) -> list[Fitted]:
    """Sustained DRAM, shared-memory and L2 bandwidths from stream, shared and cachebw."""
    out: list[Fitted] = []
    have = run.finished_tables()
    if "stream" in have:
        st = run.read_table("stream")
        big = st[st["array_B"] >= DRAM_ARRAY_OVER_L2 * spec.l2.size_MiB * 2**20]
        if len(big):
            per_op = big.groupby("op")["bandwidth_GBps"].max()
            value = float(per_op.get("read", per_op.max()))
            out.append(Fitted("DRAM read bandwidth", "dram.measured_bandwidth_GBps",
                              round(value, 1), "GB/s", float(per_op.min()), float(per_op.max()),
                              "stream: best read, arrays >= 4x L2", True,
                              "low/high: the worst and best of the ops' best figures ("
                              + ", ".join(f"{op} {bw:.0f}" for op, bw in per_op.items()) + ")"))
    if "shared" in have:
        sh = run.read_table("shared")
        free = sh[sh["conflict_ways"] == 1]
        if len(free):
            value = float(free["bytes_per_clk_per_SM"].max())
            out.append(Fitted("shared-memory bandwidth per SM", "l1.bandwidth_bytes_per_cycle",
                              round(value, 2), "B/cycle", None, None,
                              "shared: conflict-free stride", True))
    if "cachebw" in have:
        cb = run.read_table("cachebw")
        l2 = cb[cb["level"].str.upper() == "L2"]
        if len(l2):
            value = float(l2["bandwidth_GBps"].max())
            out.append(Fitted("L2 read bandwidth", "l2.bandwidth_GBps", round(value, 1), "GB/s",
                              None, None, "cachebw: l2 re-read", True))
    return out


#: How a run is split in halves: each table's rows form curves (rows that agree in the first
#: columns), ordered by a size (the product of the second columns; shapes of one product by the
#: columns themselves). Within a curve the distinct shapes, in that order, alternate fit, held
#: out, fit, ... (the smallest is fitted), so both halves span every curve and all repeats of a
#: shape fall on one side. Tables not listed (``launch``) hold no sizes and are fitted whole.
#: `simgpu fit --half` fits on the first half; `simgpu validate --held-out` judges the second.
HALF_SPLIT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pchase": (("path", "stride_B"), ("footprint_B",)),
    "stream": (("op",), ("array_B",)),
    "shared": ((), ("stride_words",)),
    "cachebw": (("level",), ("footprint_B",)),
    "gemm": (("kernel", "dtype", "layout", "tile_m", "tile_n", "tile_k", "thread_tile_m",
              "thread_tile_n", "split_k", "stages"), ("M", "N", "K")),
    "gemv": ((), ("M", "N")),
    "transpose": (("kernel",), ("rows", "cols")),
    "reduction": ((), ("n",)),
    "pcie": (("direction", "host_memory"), ("size_B",)),
}


def size_halves(table: str, df: pd.DataFrame) -> pd.Series:
    """Which rows of run table ``table`` the fit half holds (True) under :data:`HALF_SPLIT`;
    the others judge the fit and never enter it. A table without sizes is all True."""
    if table not in HALF_SPLIT or df.empty:
        return pd.Series(True, index=df.index, name="fit")
    curve, size_cols = HALF_SPLIT[table]
    missing = [c for c in (*curve, *size_cols) if c not in df.columns]
    if missing:
        raise DatasetError(f"{table} table: no column {missing} to split its rows by")
    shape = df[list(size_cols)].astype(float)
    order = shape.assign(_size=shape.prod(axis=1))[["_size", *size_cols]]
    keys = df[list(curve)].astype(str).agg("|".join, axis=1) if curve else pd.Series(
        "", index=df.index)
    shapes = order.apply(tuple, axis=1)
    fit = np.zeros(len(df), dtype=bool)
    for rows in keys.groupby(keys).indices.values():
        rank = {s: i for i, s in enumerate(sorted(set(shapes.iloc[rows])))}
        fit[rows] = [rank[s] % 2 == 0 for s in shapes.iloc[rows]]
    return pd.Series(fit, index=df.index, name="fit")


class HalfRun(RunDir):
    """A run whose tables show only the rows :func:`size_halves` gives the fit."""

    def read_table(self, name: str) -> pd.DataFrame:
        df = super().read_table(name)
        return df[size_halves(name, df)].reset_index(drop=True)


def _gemm_rows(run: RunDir) -> pd.DataFrame:
    """The run's GEMM rows as :func:`load_calibration_run` gives them, limited to the fit half
    for a :class:`HalfRun`."""
    df = load_calibration_run(run.path)
    if isinstance(run, HalfRun):
        df = df[size_halves("gemm", df)].reset_index(drop=True)
    return df


def _rel_intercept(size: np.ndarray, t_s: np.ndarray, bw_Bps: float) -> float:
    """The latency ``L`` of ``t = L + size / bw`` that minimises the squared relative error."""
    w = 1.0 / t_s
    return float(np.sum(w * (1.0 - size / (bw_Bps * t_s))) / np.sum(w * w))


def fit_pcie(df: pd.DataFrame) -> list[Fitted]:
    """The host link's figures from the rows :func:`size_halves` gives the fit, also in a
    whole-run fit.

    Pinned, per direction: the bandwidth is the median of copies of at least
    :data:`PCIE_LARGE_COPY_B`; the fixed cost the ``L`` of ``t = L + bytes / bw`` with the least
    squared relative error. Pageable: the staging model of :mod:`simgpu.sim.pcie`
    (:func:`~simgpu.sim.pcie.copy_seconds`, :data:`PCIE_STAGING_BUFFERS` staging buffers) fitted
    by least squares on log time: one surcharge for both directions, a staging rate per direction,
    and where the larger fitted sizes are staged more slowly, a second rate above the largest
    size that still runs at the first (``host_cache_MiB``: the fit only knows the cache holds at
    least that). Both directions at once: ``duplex_fraction`` and ``copy_issue_us`` by least
    squares of the simulated ``bidir`` copies (:class:`simgpu.workloads.HostCopy`)."""
    fit = df[size_halves("pcie", df)]
    out: list[Fitted] = []
    bw: dict[str, float] = {}
    lat: dict[str, float] = {}
    for direction, key in (("h2d", "host_link.measured_h2d_GBps"),
                           ("d2h", "host_link.measured_d2h_GBps")):
        sel = fit[(fit["direction"] == direction) & (fit["host_memory"] == "pinned")]
        if len(sel) < 3:
            continue
        size = sel["size_B"].to_numpy(float)
        t_s = sel["time_ms"].to_numpy(float) * 1e-3
        large = sel[sel["size_B"] >= PCIE_LARGE_COPY_B]
        if len(large):
            peak = float(large["bandwidth_GBps"].median())
        else:  # no large copy: the slope of the line
            a = np.stack([np.ones_like(size), size], axis=1) / t_s[:, None]
            (_, inv_bw), *_ = np.linalg.lstsq(a, np.ones_like(size), rcond=None)
            peak = 1e-9 / inv_bw
        bw[direction] = peak
        lat[direction] = _rel_intercept(size, t_s, peak * 1e9)
        src = "pcie, fitted half of the sizes (size_halves)"
        out.append(Fitted(f"PCIe {direction} bandwidth (pinned)", key, round(peak, 2), "GB/s",
                          float(large["bandwidth_GBps"].min()) if len(large) else None,
                          float(large["bandwidth_GBps"].max()) if len(large) else None,
                          f"{src}: median of pinned copies >= {PCIE_LARGE_COPY_B >> 20} MiB",
                          True))
        out.append(Fitted(f"PCIe {direction} latency", "host_link.latency_us" if direction ==
                          "h2d" else "host_link.d2h_latency_us", round(lat[direction] * 1e6, 2),
                          "us", None, None, f"{src}: fixed cost of t = latency + bytes/bw"
                          " (pinned), least relative error", True))
    if set(bw) == {"h2d", "d2h"}:
        out += _fit_pageable(fit, bw, lat)
        out += _fit_bidir(fit, bw, lat)
    return out


#: Staging buffers of the pageable fit: one, staging and DMA in series. The measured totals
#: cannot tell a pipeline from a series copy: fitted with two buffers and a free chunk, the
#: chunk comes out at 19 MiB (in series for every copy up to that size) and the held-out error
#: is the same (median 2.9% against 2.1%), so the fit spends no parameter on the chunk.
PCIE_STAGING_BUFFERS = 1


def _fit_pageable(fit: pd.DataFrame, bw: dict[str, float], lat: dict[str, float]) -> list[Fitted]:
    from simgpu.sim.pcie import STAGING_CHUNK_BYTES, LinkParams, copy_seconds

    pg = fit[fit["host_memory"] == "pageable"].sort_values(["direction", "size_B"])
    if pg["direction"].nunique() < 2 or len(pg) < 6:
        return []
    size = pg["size_B"].to_numpy(float)
    t_s = pg["time_ms"].to_numpy(float) * 1e-3
    dirs = pg["direction"].to_numpy(str)

    def params(x: np.ndarray, cache: float) -> LinkParams:
        surcharge, h2d, d2h, h2d_far, d2h_far = x
        return LinkParams(
            bandwidth={d: bw[d] * 1e9 for d in bw}, latency=dict(lat),
            pageable_latency=surcharge * 1e-6, staging={"h2d": h2d * 1e9, "d2h": d2h * 1e9},
            staging_uncached={"h2d": h2d_far * 1e9, "d2h": d2h_far * 1e9}, host_cache=cache,
            chunk=STAGING_CHUNK_BYTES, buffers=PCIE_STAGING_BUFFERS,
            duplex_fraction=1.0, issue_gap=0.0)

    def resid(x: np.ndarray, cache: float) -> np.ndarray:
        p = params(x, cache)
        model = np.array([copy_seconds(p, n, d, False) for n, d in zip(size, dirs, strict=True)])
        return np.asarray(np.log(model / t_s))

    x0 = np.array([5.0, 10.0, 10.0, 10.0, 10.0])
    lo = np.array([0.0, 0.05, 0.05, 0.05, 0.05])
    hi = np.array([1000.0, 500.0, 500.0, 500.0, 500.0])
    best: tuple[float, float, np.ndarray] | None = None
    # the cache bound: no cache, or each fitted size with a larger fitted size of both directions
    sizes = sorted(set(size))
    for cache in [math.inf] + [float(c) for c in sizes[1:-1]]:
        r = least_squares(resid, x0, args=(cache,), bounds=(lo, hi))
        cost = float(np.sum(r.fun ** 2))
        if best is None or cost < best[0] - 1e-12:
            best = (cost, cache, r.x)
    assert best is not None
    cost, cache, x = best
    surcharge, h2d, d2h, h2d_far, d2h_far = x
    rms = math.sqrt(cost / len(t_s))
    src = (f"pcie, fitted half of the sizes (size_halves): pageable staging model, {len(t_s)}"
           f" copies, rms log error {rms:.3f}")
    out = [
        Fitted("PCIe pageable surcharge", "host_link.pageable_latency_us", round(surcharge, 2),
               "us", None, None, src, True),
        Fitted("PCIe staging buffers", "host_link.staging_buffers", PCIE_STAGING_BUFFERS, "1",
               None, None, "pcie: the fit's choice, staging and DMA in series (simgpu.calibrate"
               ".fit.PCIE_STAGING_BUFFERS says why)", True),
        Fitted("PCIe h2d staging rate", "host_link.staging_h2d_GBps", round(h2d, 2), "GB/s",
               None, None, src, True),
        Fitted("PCIe d2h staging rate", "host_link.staging_d2h_GBps", round(d2h, 2), "GB/s",
               None, None, src, True),
    ]
    if math.isfinite(cache):
        out += [
            Fitted("PCIe host cache", "host_link.host_cache_MiB", round(cache / 2**20, 3),
                   "MiB", None, None, src + "; the largest fitted size staged at the cached"
                   " rate", True),
            Fitted("PCIe h2d staging rate, uncached", "host_link.staging_uncached_h2d_GBps",
                   round(h2d_far, 2), "GB/s", None, None, src, True),
            Fitted("PCIe d2h staging rate, uncached", "host_link.staging_uncached_d2h_GBps",
                   round(d2h_far, 2), "GB/s", None, None, src, True),
        ]
    return out


def _fit_bidir(fit: pd.DataFrame, bw: dict[str, float], lat: dict[str, float]) -> list[Fitted]:
    from simgpu.devices.spec import HostLinkSpec
    from simgpu.workloads.memory import HostCopy

    bi = fit[(fit["direction"] == "bidir") & (fit["host_memory"] == "pinned")]
    if len(bi) < 2:
        return []
    link = HostLinkSpec(interface="pcie", pcie_gen=5, lanes=16,
                        bandwidth_per_direction_GBps=1000.0, measured_h2d_GBps=bw["h2d"],
                        measured_d2h_GBps=bw["d2h"], latency_us=lat["h2d"] * 1e6,
                        d2h_latency_us=lat["d2h"] * 1e6, copy_engines=2)
    size = bi["size_B"].to_numpy(int)
    t_s = bi["time_ms"].to_numpy(float) * 1e-3
    clock = 1000.0  # MHz: the simulator's time base only

    def resid(x: np.ndarray) -> np.ndarray:
        spec = _LinkOnly(dataclasses.replace(link, duplex_fraction=float(x[0]),
                                             copy_issue_us=float(x[1])), clock)
        model = [HostCopy(int(n), "bidir").simulate(spec).time_s for n in size]  # type: ignore[arg-type]
        return np.asarray(np.log(np.array(model) / t_s))

    r = least_squares(resid, np.array([0.9, 2.0]), bounds=([0.05, 0.0], [1.0, 1000.0]),
                      diff_step=1e-3)
    rms = math.sqrt(float(np.mean(r.fun ** 2)))
    src = (f"pcie, fitted half of the sizes (size_halves): simulated bidir copies, {len(bi)}"
           f" sizes, rms log error {rms:.3f}")
    return [
        Fitted("PCIe duplex fraction", "host_link.duplex_fraction", round(float(r.x[0]), 4),
               "1", None, None, src, True),
        Fitted("PCIe copy issue time", "host_link.copy_issue_us", round(float(r.x[1]), 2), "us",
               None, None, src, True),
    ]


@dataclass(frozen=True)
class _LinkOnly:
    """What :meth:`HostCopy.simulate` reads of a device: its name, clock and host link."""

    host_link: Any
    clock_MHz: float
    name: str = "host link"


def static_power(run: RunDir) -> float | None:
    """Board power with nothing running at operating clocks, from the ``launch`` table."""
    if "launch" not in run.finished_tables():
        return None
    la = run.read_table("launch")
    for metric in ("idle_power_W_counter", "idle_power_W_sampled"):
        sel = la[la["metric"] == metric]
        if len(sel):
            return float(sel["value"].iloc[0])
    return None


def fit_power(run: RunDir, spec: DeviceSpec) -> list[Fitted]:
    """Static power from ``launch``; energies per event fitted to the GEMM rows with power
    (:func:`fit_gemm_energies`), with ``static_W`` held at the value measured here."""
    out: list[Fitted] = []
    static = static_power(run)
    if static is None:
        return out
    out.append(Fitted("static power (no kernel, operating clocks)", "power.static_W",
                      round(static, 1), "W", None, None, "launch: idle power", True))
    if "gemm" not in run.finished_tables():
        return out
    run.read_table("gemm")  # the finished table itself, checked (not the partial points)
    df = _gemm_rows(run)
    df = df[df["power_W"].notna()].reset_index(drop=True)
    if len(df) < 3:
        return out
    df["device"] = spec.name
    params = dataclasses.replace(DeviceParams.from_spec(spec), static_W=static)
    energies, info, events = fit_gemm_energies(df, params)
    for name, pj in energies.items():
        n = int((events[name] > 0).sum())
        out.append(Fitted(f"energy per event {name}", f"power.energy_pJ.{name}",
                          round(pj, 4), "pJ", None, None,
                          f"fitted to the power of {int(info['rows'])} GEMM rows ({n} with this "
                          f"event): analytical power R^2 {info['r2']:.2f}, rms "
                          f"{info['rms_W']:.0f} W", True))
    return out


#: cuBLAS calls shorter than this carry the host's pace (a run times each call with CUDA events):
#: the library's issue fit leaves them out. Source: run 20261122T154403Z, cuBLAS fp32 256^3 to
#: 512^3 all measured 29-30 us, while their work differs 8-fold; 768^3 37 us.
LIBRARY_FIT_MIN_S = 100e-6


def fit_library_issue(
    run: RunDir, spec: DeviceSpec, energies: dict[str, float] | None = None
) -> list[Fitted]:
    """``compute.simt_issue_overhead``: the issue slots per FFMA the library's SIMT GEMMs lose
    beyond the instructions the analytical model counts (:func:`simgpu.analytical.gemm.
    ffma_issue_efficiency`), chosen so that the median of measured / analytical time over the
    run's cuBLAS fp32 calls of at least :data:`LIBRARY_FIT_MIN_S` is 1 (bisection: the time
    grows with the overhead). ``energies``: the run's fitted energies per event, so that the
    clock the power cap allows is the calibrated model's. None where the run has no such call."""
    if "gemm" not in run.finished_tables():
        return []
    df = _gemm_rows(run)
    rows = df[(df["kernel"] == "cublas") & (df["dtype"] == "fp32")
              & (df["time_s"] >= LIBRARY_FIT_MIN_S)].reset_index(drop=True)
    if rows.empty:
        return []
    rows["device"] = spec.name
    params = DeviceParams.from_spec(spec)
    if energies:
        params = params.with_energies({**params.energy_pJ, **energies})
    measured = rows["time_s"].to_numpy(dtype=float)

    def excess(overhead: float) -> float:
        p = dataclasses.replace(params, simt_issue_overhead=overhead)
        est = estimate(rows, {spec.name: p})["time_s"].to_numpy(dtype=float)
        return float(np.median(np.log(measured / est)))

    lo, hi = 0.0, 4.0  # the device file's range
    if excess(lo) <= 0:
        value = lo
    elif excess(hi) >= 0:
        value = hi
    else:
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
        value = 0.5 * (lo + hi)
    return [Fitted("library SIMT issue slots lost per FFMA", "compute.simt_issue_overhead",
                   round(value, 4), "slots/FFMA", 0.0, 4.0,
                   f"gemm: median measured/analytical time = 1 over {len(rows)} cuBLAS fp32 calls"
                   f" of {LIBRARY_FIT_MIN_S * 1e6:.0f} us or more", True)]


def fit_library_floor(run: RunDir) -> list[Fitted]:
    """``host_link.library_call_floor_us``: per dtype, the shortest measured time of the run's
    library GEMM calls, where that call is small (:func:`simgpu.calibrate.gemm_rows.
    library_floors`)."""
    if "gemm" not in run.finished_tables():
        return []
    out = []
    for (_, dtype), r in library_floors(_gemm_rows(run)).iterrows():
        size = "x".join(str(int(r[c])) for c in ("M", "N", "K"))
        out.append(Fitted(f"library call floor {dtype}", f"host_link.library_call_floor_us.{dtype}",
                          round(float(r["time_s"]) * 1e6, 2), "us", None, None,
                          f"gemm: shortest of {int(r['calls'])} cuBLAS {dtype} calls ({size})",
                          True))
    return out


#: Calls of one of simgpu's own kernels whose measured times lie within this factor of the
#: shortest form the harness's floor when they move different amounts of data: a time that does
#: not grow with the data is the host's pace, not the kernel's. assumption: 10% is the scatter of
#: one such call (run 20261122T154403Z: the 2^16-element reduction's 10th-90th percentiles are
#: -6% and +14% of its median); in that run the reductions of 2^16 to 2^22 elements all took
#: 10.5-10.6 us and 12 streams of 2-24 MiB 6.9-7.6 us, against 6.8 us for an empty launch
#: (launch.csv, event-timed).
KERNEL_FLOOR_PLATEAU = 1.1


def fit_kernel_floor(run: RunDir) -> list[Fitted]:
    """``host_link.kernel_call_floor_us``: per kind of simgpu's own kernels (a table of the run:
    stream, reduction, transpose, gemv), the shortest measured call, where calls of at least two
    sizes take within :data:`KERNEL_FLOOR_PLATEAU` of it (the harness times no call of that
    kind shorter, whatever it moves); a kind without such a plateau gets no floor."""
    have = run.finished_tables()
    out = []
    for kind in KERNEL_FLOOR_KINDS:
        if kind not in have:
            continue
        df = run.read_table(kind)
        if "check_ok" in df.columns:
            df = df[df["check_ok"].astype(str) == "True"]
        if df.empty:
            continue
        t = df["time_ms"].astype(float)
        shortest = float(t.min())
        plateau = df[t <= KERNEL_FLOOR_PLATEAU * shortest]
        sizes = plateau["bytes_moved"].astype(float)
        if sizes.nunique() < 2:
            continue
        out.append(Fitted(f"kernel call floor {kind}", f"host_link.kernel_call_floor_us.{kind}",
                          round(shortest * 1e3, 2), "us", None, None,
                          f"{kind}: shortest of {len(df)} calls; {len(plateau)} calls of"
                          f" {sizes.min() / 2**20:g}-{sizes.max() / 2**20:g} MiB within"
                          f" {KERNEL_FLOOR_PLATEAU - 1:.0%} of it", True))
    return out


def fit_gemm_energies(
    df: pd.DataFrame, params: Any
) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
    """Energies per event (pJ, at the boost clock) for the GEMM rows of one device with
    measured power, so that the analytical model reproduces that power.

    Two steps. First non-negative least squares on the measured time and SM clock of each row
    (:func:`simgpu.analytical.power.fit_energies`; the event counts are the analytical model's,
    with the library's split-K search as every view uses it; ``sm_clock_MHz`` where the data has
    it). That fit explains the measurements (``nnls_r2``), but the analytical view predicts power
    from its own time and its own clock under the cap, and its time is shorter than the measured
    one for most kernels, so the NNLS energies make it draw too much. The second step starts there
    and minimises the log error of the power the analytical model predicts for each row (scipy
    ``least_squares``, energies >= 0), with the library rows' tile choice held and made again
    after each fit until it no longer changes. Returns (energies, fit figures of the model's power:
    rows, R^2, rms W, mean |error| %, and the first step's ``nnls_r2``, events).
    """
    names = sorted({str(n) for n in df["device"].unique()})
    if len(names) != 1:
        raise DatasetError(f"fit_gemm_energies: rows of one device expected, got {names}")
    est = estimate(df, {names[0]: params})
    events = {n: est[f"ev_{n}"].to_numpy(float) for n in pw.EVENTS}
    ratio = np.ones(len(df))
    if "sm_clock_MHz" in df.columns:
        clock = pd.to_numeric(df["sm_clock_MHz"], errors="coerce").to_numpy(float)
        ratio = np.where(np.isfinite(clock) & (clock > 0), clock / params.clock_MHz, 1.0)
    measured = df["power_W"].to_numpy(float)
    start, nnls = pw.fit_energies(params, events, df["time_s"].to_numpy(float), measured,
                                  clock_ratio=ratio)
    used = list(start)
    x = np.array([start[n] for n in used])

    def model_power(x: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        energies = dict(zip(used, np.maximum(x, 0.0), strict=True))
        return np.asarray(_with_energies(rows, params, energies)["power_W"].to_numpy(float))

    # The library rows' tiles and split-K are the model's choice, and that choice depends on the
    # energies through the power cap: a jump in the objective that stalls a gradient method
    # short of the optimum. So the energies are fitted with the choice held (a smooth problem),
    # then the choice is made again with them, until it no longer changes.
    chosen = None
    for _ in range(_FIT_ROUNDS):
        est_x = _with_energies(df, params, dict(zip(used, x, strict=True)))
        held = _hold_tiles(df, est_x)
        if chosen is not None and held[_TILE_COLUMNS].equals(chosen):
            break
        chosen = held[_TILE_COLUMNS]

        def resid(x: np.ndarray, held: pd.DataFrame = held) -> np.ndarray:
            return np.asarray(np.log(model_power(x, held) / measured))

        # x_scale: energies differ by orders of magnitude (tensor FLOPs ~0.1 pJ, DRAM bytes
        # ~10s); tolerances: 1e-6 of the log power error is far below the 1-2% noise of an
        # NVML window
        x = least_squares(resid, x, bounds=(0.0, np.inf), x_scale=np.maximum(x, 0.1),
                          diff_step=1e-3, ftol=1e-6, xtol=1e-6, gtol=1e-6).x
    else:  # the rounds ran out: the estimate at the last energies is still to be made
        est_x = _with_energies(df, params, dict(zip(used, x, strict=True)))
    energies = {n: float(v) for n, v in zip(used, x, strict=True)}
    pred = est_x["power_W"].to_numpy(float)
    err = pred - measured
    ss_tot = float(np.sum((measured - measured.mean()) ** 2))
    info = {
        "rows": float(len(df)),
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "rms_W": float(np.sqrt(np.mean(err**2))),
        "mape_pct": float(np.mean(np.abs(err) / measured) * 100.0),
        "nnls_r2": nnls["r2"],
    }
    return energies, info, events


#: rounds of (choose tiles, fit energies with them held) in :func:`fit_gemm_energies`
_FIT_ROUNDS = 6
#: the tile configuration of a GEMM row, as the schema names it and the model reports it
_TILE_COLUMNS = ["tile_m", "tile_n", "tile_k", "thread_tile_m", "thread_tile_n",
                 "threads_per_block", "split_k", "stages"]


def _hold_tiles(df: pd.DataFrame, est: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every row's tiles and split-K set to those of the estimate ``est``, so that
    the model evaluates that configuration instead of searching (the same numbers, by
    construction: the search evaluates each candidate the same way)."""
    return df.assign(**{c: est[c].to_numpy(float) for c in _TILE_COLUMNS})


def _with_energies(df: pd.DataFrame, params: Any, energies: dict[str, float]) -> pd.DataFrame:
    """The analytical model of GEMM rows (all of ``params``'s device) with these energies."""
    p = dataclasses.replace(params, energy_pJ={**params.energy_pJ, **energies})
    return estimate(df.assign(device=params.name), {params.name: p})


def power_fit_checks(
    df: pd.DataFrame, params: Any, energies: dict[str, float], folds: int = 0
) -> dict[str, float]:
    """How fitted energies do beyond their own fit: the clock the model predicts for the rows
    the cap throttled (``sm_clock_MHz`` below 98% of the boost clock), and with ``folds`` > 1
    the power error on (M, N, K) sizes held out of the fit, each fold refitted from ``params``."""
    out: dict[str, float] = {}
    rows = df.assign(device=params.name)
    model_clock = _with_energies(rows, params, energies)["clock_MHz"].to_numpy(float)
    if "sm_clock_MHz" in rows.columns:
        measured = pd.to_numeric(rows["sm_clock_MHz"], errors="coerce").to_numpy(float)
        slow = measured < 0.98 * params.clock_MHz
        capped = model_clock < params.clock_MHz
        if slow.any():
            out["throttled_rows"] = float(slow.sum())
            out["throttled_measured_MHz"] = float(np.median(measured[slow]))
            out["throttled_model_MHz"] = float(np.median(model_clock[slow]))
        out["capped_unthrottled_rows"] = float((capped & ~slow & np.isfinite(measured)).sum())
    if folds > 1:
        sizes = rows[["M", "N", "K"]].astype(str).agg("x".join, axis=1)
        keys = np.array(sizes.unique(), dtype=object)
        np.random.default_rng(0).shuffle(keys)
        ape: list[float] = []
        for held in np.array_split(keys, folds):
            test = sizes.isin(held).to_numpy()
            e, _, _ = fit_gemm_energies(rows[~test].reset_index(drop=True), params)
            got = _with_energies(rows[test].reset_index(drop=True), params, e)["power_W"]
            want = rows["power_W"].to_numpy(float)[test]
            ape.extend((np.abs(got.to_numpy(float) - want) / want * 100.0).tolist())
        out["cv_mape_pct"] = float(np.mean(ape))
        out["cv_median_ape_pct"] = float(np.median(ape))
    return out


def _clock_MHz(run: RunDir, spec: DeviceSpec) -> float:
    gpu = run.manifest()["provenance"].get("gpu", {})
    for key in ("sm_clock_application_MHz", "sm_clock_max_MHz"):
        if gpu.get(key):
            return float(gpu[key])
    return spec.clock_MHz


def fit_run(run_dir: Path, base: DeviceSpec, half: bool = False) -> list[Fitted]:
    """Every parameter the run's tables determine (see the module docstring); with ``half``,
    from the rows :func:`size_halves` gives the fit only (each value's source says so).

    Tables that pass the schema can still hold curves no model fits (a latency ladder without
    steps, copies of one size): the fit of such a table fails with a DatasetError naming the
    table and what went wrong, never with the numerical library's own exception."""
    run = HalfRun.open(run_dir) if half else RunDir.open(run_dir)
    have = run.finished_tables()
    if not have:
        raise DatasetError(f"{run_dir}: the run holds no finished tables")
    out: list[Fitted] = []
    if "pchase" in have:
        pchase = run.read_table("pchase")
        out += _fitting(run, "pchase",
                        lambda: fit_latency_ladder(pchase, base, _clock_MHz(run, base)))
    out += _fitting(run, "stream, shared and cachebw", lambda: fit_bandwidths(run, base))
    if "pcie" in have:
        pcie = run.read_table("pcie")
        out += _fitting(run, "pcie", lambda: fit_pcie(pcie))
    power = _fitting(run, "launch and gemm", lambda: fit_power(run, base))
    out += power
    energies = {f.key.rsplit(".", 1)[1]: f.value for f in power
                if f.key.startswith("power.energy_pJ.")}
    out += _fitting(run, "gemm", lambda: fit_library_issue(run, base, energies))
    out += _fitting(run, "gemm", lambda: fit_library_floor(run))
    out += _fitting(run, ", ".join(KERNEL_FLOOR_KINDS), lambda: fit_kernel_floor(run))
    for f in out:
        if not math.isfinite(f.value):
            raise DatasetError(f"{run.path}: {f.source}: {f.name} came out as {f.value}; the "
                               "table's values allow no fit")
    if half:
        out = [dataclasses.replace(f, source=f"{f.source} [fit half of the sizes]") for f in out]
    return out


def _fitting(run: RunDir, tables: str, fit: Any) -> list[Fitted]:
    """``fit()``, with a numerical failure of the fit turned into a DatasetError naming the
    run's tables that were being fitted."""
    with np.errstate(all="ignore"):
        try:
            return list(fit())
        except SimgpuError:
            raise
        except (ValueError, ArithmeticError, np.linalg.LinAlgError, IndexError) as exc:
            raise DatasetError(
                f"{run.path}: {tables}: no fit to these values ({type(exc).__name__}: "
                f"{str(exc)[:200]})"
            ) from None


def fitted_frame(fitted: Sequence[Fitted]) -> pd.DataFrame:
    """The fitted values as a table, one row per :class:`Fitted`."""
    return pd.DataFrame([asdict(f) for f in fitted])


# --- the calibrated device file ----------------------------------------------------------------

_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_]+)\s*=\s*(?P<value>[^#]*?)\s*(?:#.*)?$")
_HEADER = re.compile(r"^\[(?P<name>[A-Za-z0-9_.]+)\]\s*(?:#.*)?$")


def calibrated_name(base: str, run_id: str, half: bool = False) -> str:
    """``h100-sxm`` + ``20261122T154403Z`` -> ``h100-sxm-cal-20261122t154403z`` (``...-half``
    when fitted on half of the sizes)."""
    return f"{base}-cal-{run_id}{'-half' if half else ''}".lower()


def _toml_value(value: Any) -> str:
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def calibrated_text(base_text: str, base_name: str, run_label: str, name: str,
                    fitted: Sequence[Fitted], half: bool = False) -> str:
    """The base model's TOML with the applied values replaced, each citing the run.

    The comment block right above a section whose every value the run replaces describes how the
    base model got its values (a fit to other runs, say); it gives way to a line that says where
    the values now come from and where the base model's account is."""
    values: dict[str, dict[str, tuple[Any, str]]] = {}
    for f in fitted:
        if f.applied and f.key:
            section, _, key = f.key.rpartition(".")
            values.setdefault(section, {})[key] = (f.value, f.source)
    headers = {m.group("name") for ln in base_text.splitlines() if (m := _HEADER.match(ln.strip()))}
    base_keys: dict[str, set[str]] = {}  # the keys of each of the base's sections
    current = ""
    for ln in base_text.splitlines():
        if h := _HEADER.match(ln.strip()):
            current = h.group("name")
        elif k := _KEY_LINE.match(ln.strip()):
            base_keys.setdefault(current, set()).add(k.group("key"))
    top = {"name": name, "base_model": base_name, "calibration_run": run_label}
    out: list[str] = [
        f"# Calibrated from {base_name}.toml with run calibration/{run_label}",
        "# (simgpu fit). Values marked 'calibration run' were measured; all others are the base",
        "# model's, with their sources.",
    ] + ([
        "# Fitted on half of the run's sizes (simgpu fit --half, by",
        "# simgpu.calibrate.fit.size_halves); the other half judges it:",
        "# simgpu validate --held-out.",
    ] if half else [])
    seen: set[tuple[str, str]] = set()

    def emit(sec: str, key: str, old: str | None = None) -> None:
        value, source = values[sec][key]
        was = f" (base model: {old})" if old is not None else ""
        out.append(f"{key} = {_toml_value(value)}  # calibration run {run_label}: {source}{was}")
        seen.add((sec, key))

    def close_section(sec: str) -> None:
        for key in values.get(sec, {}):
            if (sec, key) not in seen:
                emit(sec, key)
        # sub-tables the base lacks go right after their parent (TOML keeps them apart anyway)
        for sub in values:
            if sub.startswith(f"{sec}.") and sub.count(".") == sec.count(".") + 1 and (
                sub not in headers
            ):
                out.append(f"[{sub}]")
                for key in values[sub]:
                    emit(sub, key)

    section = ""
    for line in base_text.splitlines():
        header = _HEADER.match(line.strip())
        if header:
            if not section:
                for key, value in top.items():
                    out.append(f"{key} = {_toml_value(value)}  # calibrated model")
                top = {}
            close_section(section)
            section = header.group("name")
            if base_keys.get(section) and base_keys[section] <= set(values.get(section, {})):
                n = len(out)
                while n and out[n - 1].startswith("#"):
                    n -= 1
                if n < len(out):
                    out[n:] = [f"# [{section}]: every value below is from calibration run"
                               f" {run_label};",
                               f"# how the base model got its values: {base_name}.toml"]
            out.append(line)
            continue
        m = _KEY_LINE.match(line.strip())
        if m and not section and m.group("key") in ("name", "base_model", "calibration_run"):
            continue  # replaced by the calibrated identity
        if m and m.group("key") in values.get(section, {}):
            emit(section, m.group("key"), m.group("value"))
            continue
        out.append(line)
    close_section(section)
    return "\n".join(out) + "\n"


def write_calibrated_model(run_dir: Path, base: DeviceSpec, base_path: Path,
                           fitted: Sequence[Fitted], models_dir: Path,
                           half: bool = False) -> Path:
    """Write ``<models_dir>/<base>-cal-<run-id>.toml`` (``...-half.toml`` for a fit on half of
    the sizes); validate it by loading it back."""
    run = RunDir.open(run_dir)
    m = run.manifest()
    run_label = f"{m['device']}/{m['run_id']}"  # plain names: RunDir.manifest checks them
    name = plain_name(calibrated_name(base.name, str(m["run_id"]), half),
                      "calibrated model name")
    target = Path(models_dir) / f"{name}.toml"
    if target.exists():
        raise SimgpuError(f"{target}: already exists; calibrated models are never overwritten")
    text = calibrated_text(base_path.read_text(encoding="utf-8"), base.name, run_label, name,
                           fitted, half)
    loads(text, source=str(target))  # raises DeviceFileError naming the key if a value is bad
    try:
        atomic_write_text(target, text, overwrite=False)
    except OutputError as exc:
        if target.exists():  # written meanwhile by another fit
            raise SimgpuError(f"{target}: already exists; calibrated models are never "
                              "overwritten") from None
        raise exc from None
    return target
