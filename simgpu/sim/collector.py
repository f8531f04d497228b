"""Keep Python's cyclic garbage collector out of the way while a simulation runs.

A simulation allocates a request, an event and a closure or two per memory access, almost all
freed by reference counting. With the interpreter's default thresholds (a young-generation pass
every 700 allocations, and the full passes they trigger, which walk every cache tag created
during the run) the collector took 30-40% of the CPU time of a DRAM stream in
``experiments/benchmarks/bench_sim_memory.py``. :func:`relaxed_gc` freezes what exists when a
run starts (the warmed tags, tables and traces: long-lived, never garbage) and raises the
thresholds for the length of the run; collection still happens, just rarely, so a model that
does make reference cycles stays bounded in memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["relaxed_gc", "SIM_GC_THRESHOLDS"]

#: young-generation allocations between passes, and the ratios for the older generations;
#: measured: (50_000, 20, 100) ran the DRAM stream case as fast as with the collector off.
SIM_GC_THRESHOLDS = (50_000, 20, 100)


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Freeze the existing objects and raise the collection thresholds until the block ends.

    Not meant to be nested: leaving any block unfreezes every frozen object.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*SIM_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
