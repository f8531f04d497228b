"""Arguments of one type for the compiled modules of :mod:`simgpu.sim` (numba).

numba compiles a function once for every distinct list of argument types it is called with,
and when a compiled function passes a constant (``0``, ``-1``, ``False``, a module constant
such as ``ACT_DONE``) to another, the argument's type is that literal value: each constant a
callee received cost one more compile of it and of everything it calls. A variable that starts
from a constant and is passed on does the same (numba types the call with the constant first,
then again with the variable's type). So the compiled modules pass such values through
:func:`int_arg` and :func:`bool_arg`, and start such variables from ``int_arg(...)``: the callee
gets a plain ``int64`` or ``bool``, and each function is compiled once. Before this rule, the
simulator's first run compiled 117 versions of its functions, 18 functions more than once, in 31
s; with it 85 versions in 27 s (``experiments/benchmarks/bench_compile.py``, which lists any
function compiled more than once).

These helpers are compiled into their callers' cached code: they never change.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def int_arg(v: int) -> int:
    """``v`` as an ``int64`` that is not a literal."""
    return int(v)


@njit(cache=True)
def bool_arg(v: bool) -> bool:
    """``v`` as a ``bool`` that is not a literal."""
    return bool(v)
