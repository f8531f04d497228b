"""What a view answers: :class:`Estimate`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Estimate", "number"]


def number(x: Any) -> float | None:
    """``x`` as a finite float, or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Estimate:
    """One view's answer for one workload on one device."""

    view: str
    #: seconds the kernel takes (None where the view gives only other figures)
    time_s: float | None
    power_W: float | None = None
    #: how far the view's own uncertainty moves the answer (sampling spread of a simulation,
    #: the trees' standard deviation of the forest); None where the view has none
    time_s_spread: float | None = None
    power_W_spread: float | None = None
    #: what limits it, in the view's words (compute, dram, l2, latency, power, ...)
    bound: str | None = None
    #: the workload's figures in its own terms (tflops, bandwidth_GBps, latency_ns) and the
    #: view's intermediate figures (waves, cycles, blocks simulated, ...)
    figures: Mapping[str, Any] = field(default_factory=dict)
    #: what answered and how (model, sampling, training data, calibration run and row)
    note: str = ""
    #: wall seconds the view took
    seconds: float = 0.0
    #: the view's own result object (SimResult, the analytical row, the calibration row)
    detail: Any = field(default=None, repr=False, compare=False)

    @property
    def energy_J(self) -> float | None:
        if self.time_s is None or self.power_W is None:
            return None
        return self.time_s * self.power_W

    def get(self, metric: str) -> float | None:
        """``time_s``, ``power_W``, ``energy_J`` or a figure (None when not known)."""
        if metric in ("time_s", "power_W", "energy_J", "time_s_spread", "power_W_spread"):
            value = getattr(self, metric)
        else:
            value = self.figures.get(metric)
        return number(value)

