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

A power cap is a roof too (Choi et al., "A roofline model of energy", IPDPS 2013): the board
cannot draw more than ``tdp_W``, so work that needs E joules of dynamic energy takes at least
``E / (tdp_W - static_W)`` seconds; the GPU lowers its clock to stay under the cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

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


def has_energies(p: DeviceParams, events: Mapping[str, Any]) -> np.ndarray:
    """Per point: True when the device file gives an energy for every event that occurs."""
    ok: Any = True
    for name, n in events.items():
        if name not in p.energy_pJ:
            ok = ok & ~(np.asarray(n, dtype=float) > 0)
    return np.asarray(ok, dtype=bool)


def dynamic_energy_J(p: DeviceParams, events: Mapping[str, Any]) -> np.ndarray:
    """Sum of events x energy per event, joules (events without an energy count 0)."""
    total: Any = 0.0
    for name, n in events.items():
        total = total + np.asarray(n, dtype=float) * p.energy_pJ.get(name, 0.0) * 1e-12
    return np.asarray(total, dtype=float)


def power_time_floor_s(p: DeviceParams, events: Mapping[str, Any]) -> np.ndarray:
    """Shortest time the power cap allows: dynamic energy / (tdp_W - static_W)."""
    headroom = max(p.tdp_W - p.static_W, 1e-9)
    return dynamic_energy_J(p, events) / headroom


def power(
    p: DeviceParams,
    events: Mapping[str, Any],
    time_s: Any,
    utilisation: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power_W, energy_J, model) for work with these event counts that takes ``time_s``.

    ``model`` is "energy" where every occurring event has an energy in the device file, else
    "utilisation" (the fallback described in the module docstring).
    """
    t = np.asarray(time_s, dtype=float)
    use = np.broadcast_to(has_energies(p, events), t.shape) if p.energy_pJ else np.zeros(
        t.shape, dtype=bool
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        by_energy = np.minimum(p.static_W + dynamic_energy_J(p, events) / t, p.tdp_W)
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
) -> tuple[dict[str, float], dict[str, float]]:
    """Energies per event (pJ) that best explain measured power, by non-negative least squares.

    Solves ``power_W - static_W = sum_i energy_i x events_i / time_s`` over the measurements
    (``time_s`` the measured time of each) with every energy >= 0 (scipy.optimize.nnls).
    Returns (energies in pJ for the events that occur, fit figures: rows, rms error in W, R^2).
    """
    from scipy.optimize import nnls

    t = np.asarray(time_s, dtype=float)
    y = np.asarray(power_W, dtype=float) - p.static_W
    use = [
        n for n in (names or tuple(events))
        if np.any(np.asarray(events[n], dtype=float) > 0)
    ]
    if not use:
        raise ValueError("fit_energies: no event occurs in the data")
    A = np.column_stack([np.asarray(events[n], dtype=float) / t * 1e-12 for n in use])
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
