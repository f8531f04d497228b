"""AccelWattch-style power: static power plus the sum over units of activity x energy per event.

    P = static_W + sum_i(events_i x energy_pJ[i]) / time

(Kandiah et al., "AccelWattch: A Power Modeling Framework for Modern GPUs", MICRO 2021: constant
+ static + dynamic power, dynamic = per-component access counts x energy per access.) Energies per
event come from the device file's ``[power.energy_pJ]`` table. Event names used here:

- ``ffma_flop``: FLOPs executed on the FP32 FMA lanes (2 per FFMA);
- ``tensor_tf32_flop``, ``tensor_fp16_flop``, ``tensor_bf16_flop``, ``tensor_fp8_flop``:
  FLOPs on the tensor cores, per input type;
- ``l1_byte``: bytes through L1 / shared memory (wavefronts x 128 B);
- ``l2_byte``: bytes between the SMs and L2;
- ``dram_byte``: bytes to or from DRAM;
- ``pcie_byte``: bytes over the host link.

When a device file lacks an energy the model needs, power falls back to a utilisation model,
``static_W + (tdp_W - static_W) x utilisation`` (utilisation = busiest roof time / time), and the
``power_model`` column says ``"utilisation"`` instead of ``"energy"``.

Clock and voltage (DVFS). The energies are per event at the boost clock. A GPU that would draw
more than ``tdp_W`` lowers its core clock, and its voltage with it, until it fits under the cap
(Choi et al., "A roofline model of energy", IPDPS 2013, treat the cap as a roof; AccelWattch
models dynamic power as proportional to V^2 f). simgpu takes the core voltage proportional to the
clock over the range the cap uses, so the energy of an on-chip event (:data:`CORE_EVENTS`:
FLOPs, L1 and L2 bytes) scales with the square of the clock ratio ``r = f / f_boost``, while a
DRAM or PCIe byte costs the same at any core clock (their own rails and clocks). The on-chip roofs
stretch by ``1 / r``, the DRAM roof does not. :func:`capped_clock_ratio` finds the highest ``r``
that keeps the board under the cap. Evidence, on the 229 H100 SXM GEMM rows of calibration runs
20261122T154219Z and 20261122T154403Z: with each row's measured SM clock the ``r^2`` scaling
raises the R^2 of a least-squares energy fit at the measured times from 0.83 to 0.88, and the
analytical model with energies fitted this way predicts power within 11.4% on average (12.0% on
sizes held out of the fit; ``simgpu predict fit-power --device h100-sxm --cv 5``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import nnls

from simgpu.analytical.params import DeviceParams

EVENTS = (
    "ffma_flop",
    "tensor_tf32_flop",
    "tensor_fp16_flop",
    "tensor_bf16_flop",
    "tensor_fp8_flop",
    "l1_byte",
    "l2_byte",
    "dram_byte",
    "pcie_byte",
)


#: Events on the core's voltage rail: their energy scales with the square of the clock ratio.
CORE_EVENTS = frozenset(
    ("ffma_flop", "tensor_tf32_flop", "tensor_fp16_flop", "tensor_bf16_flop", "tensor_fp8_flop",
     "l1_byte", "l2_byte")
)
#: Lowest clock ratio the cap search considers. Source: calibration run h100-sxm/20261122T154403Z,
#: gemm.csv: the lowest SM clock NVML reported under the power cap was 1297 MHz of 1980 (0.66);
#: assumption: no GPU throttles below a third of its boost clock for a power cap.
MIN_CLOCK_RATIO = 1.0 / 3.0


def has_energies(p: DeviceParams, events: Mapping[str, Any]) -> np.ndarray:
    """Per point: True when the device file gives an energy for every event that occurs."""
    ok: Any = True
    for name, n in events.items():
        if name not in p.energy_pJ:
            ok = ok & ~(np.asarray(n, dtype=float) > 0)
    return np.asarray(ok, dtype=bool)


def _split_energy_J(p: DeviceParams, events: Mapping[str, Any]) -> tuple[Any, Any]:
    """(on-chip, off-chip) dynamic energy at the boost clock, joules."""
    core: Any = 0.0
    fixed: Any = 0.0
    for name, n in events.items():
        e = np.asarray(n, dtype=float) * p.energy_pJ.get(name, 0.0) * 1e-12
        if name in CORE_EVENTS:
            core = core + e
        else:
            fixed = fixed + e
    return core, fixed


def dynamic_energy_J(
    p: DeviceParams, events: Mapping[str, Any], clock_ratio: Any = 1.0
) -> np.ndarray:
    """Sum of events x energy per event, joules (events without an energy count 0), at
    ``clock_ratio`` times the boost clock (on-chip events scale with its square)."""
    core, fixed = _split_energy_J(p, events)
    r = np.asarray(clock_ratio, dtype=float)
    return np.asarray(core * r * r + fixed, dtype=float)


def capped_clock_ratio(
    p: DeviceParams,
    events: Mapping[str, Any],
    t_core_s: Any,
    t_fixed_s: Any,
    overhead_s: Any = 0.0,
) -> np.ndarray:
    """Highest clock ratio ``r`` (<= 1) at which the work fits under the power cap.

    At ratio ``r`` the work takes ``overhead_s + max(t_core_s / r, t_fixed_s)`` (``t_core_s``:
    the busiest on-chip roof at the boost clock; ``t_fixed_s``: the DRAM roof) and draws
    ``static_W + dynamic_energy_J(r) / time``, which rises with ``r``; bisection finds where it
    meets ``tdp_W``. Points that fit at the boost clock get 1; points that do not fit even at
    :data:`MIN_CLOCK_RATIO` get that ratio.
    """
    core, fixed = _split_energy_J(p, events)
    shape = np.broadcast_shapes(np.shape(core), np.shape(fixed), np.shape(t_core_s),
                                np.shape(t_fixed_s), np.shape(overhead_s))
    core, fixed, t_core, t_fixed, over = (
        np.broadcast_to(np.asarray(x, dtype=float), shape).ravel()
        for x in (core, fixed, t_core_s, t_fixed_s, overhead_s)
    )
    headroom = max(p.tdp_W - p.static_W, 1e-9)

    def over_cap(r: Any, i: Any) -> np.ndarray:
        t = over[i] + np.maximum(t_core[i] / r, t_fixed[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((core[i] * r * r + fixed[i]) / t > headroom)

    ratio = np.ones(core.size)
    idx = np.flatnonzero(over_cap(1.0, slice(None)))
    if idx.size:
        lo = np.full(idx.size, MIN_CLOCK_RATIO)
        hi = np.ones(idx.size)
        for _ in range(24):  # 2^-24 of the range: far below any clock step a GPU has
            mid = 0.5 * (lo + hi)
            above = over_cap(mid, idx)
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        ratio[idx] = lo
    return ratio.reshape(shape)


def power(
    p: DeviceParams,
    events: Mapping[str, Any],
    time_s: Any,
    utilisation: Any,
    clock_ratio: Any = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power_W, energy_J, model) for work with these event counts that takes ``time_s`` at
    ``clock_ratio`` times the boost clock.

    ``model`` is "energy" where every occurring event has an energy in the device file, else
    "utilisation" (the fallback described in the module docstring).
    """
    t = np.asarray(time_s, dtype=float)
    use = np.broadcast_to(has_energies(p, events), t.shape) if p.energy_pJ else np.zeros(
        t.shape, dtype=bool
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        by_energy = np.minimum(
            p.static_W + dynamic_energy_J(p, events, clock_ratio) / t, p.tdp_W
        )
    u = np.clip(np.asarray(utilisation, dtype=float), 0.0, 1.0)
    by_util = p.static_W + (p.tdp_W - p.static_W) * u
    watts = np.broadcast_to(np.where(use, by_energy, by_util), t.shape).astype(float)
    model = np.where(use, "energy", "utilisation").astype(object)
    return watts, watts * t, model


def fit_energies(
    p: DeviceParams,
    events: Mapping[str, Any],
    time_s: Any,
    power_W: Any,
    names: tuple[str, ...] | None = None,
    clock_ratio: Any = 1.0,
) -> tuple[dict[str, float], dict[str, float]]:
    """Energies per event (pJ) at the boost clock that best explain measured power, by
    non-negative least squares.

    Solves ``power_W - static_W = sum_i energy_i x s_i x events_i / time_s`` over the
    measurements (``time_s`` the measured time of each; ``s_i`` the square of the measured clock
    ratio for on-chip events, 1 for the others) with every energy >= 0 (scipy.optimize.nnls).
    Returns (energies in pJ for the events that occur, fit figures: rows, rms error in W, R^2).
    """
    t = np.asarray(time_s, dtype=float)
    y = np.asarray(power_W, dtype=float) - p.static_W
    use = [
        n for n in (names or tuple(events))
        if np.any(np.asarray(events[n], dtype=float) > 0)
    ]
    if not use:
        raise ValueError("fit_energies: no event occurs in the data")
    r2 = np.broadcast_to(np.asarray(clock_ratio, dtype=float) ** 2, t.shape)
    A = np.column_stack([
        np.asarray(events[n], dtype=float) * (r2 if n in CORE_EVENTS else 1.0) / t * 1e-12
        for n in use
    ])
    scale = A.max(axis=0)
    coef, _ = nnls(A / scale, y)
    coef = coef / scale
    fitted = A @ coef
    resid = y - fitted
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    info = {
        "rows": float(len(y)),
        "rms_W": float(np.sqrt(np.mean(resid**2))),
        "r2": 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan"),
    }
    return {n: float(c) for n, c in zip(use, coef, strict=True)}, info
