"""Sweeps: many independent points on local processes (default) or a Dask cluster.

:func:`run_points` is the engine (every finished point appended to disk as it arrives, a dead
worker loses only its point, progress bar with ETA); :mod:`simgpu.sweep.model` is the built-in
point of ``simgpu sweep`` (a device with parameter overrides x a workload x a view). Importing
this package loads neither Dask nor pandas.
"""

from __future__ import annotations

from simgpu.sweep.engine import (
    FAILED_FILE,
    ModulePoint,
    SweepError,
    SweepReport,
    grid_points,
    load_module_file,
    load_table,
    run_points,
)

__all__ = [
    "FAILED_FILE",
    "ModulePoint",
    "SweepError",
    "SweepReport",
    "grid_points",
    "load_module_file",
    "load_table",
    "run_points",
]
