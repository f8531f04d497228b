"""Table schemas of a calibration run.

Every table a run writes is declared here: column name, type and unit. The writer checks rows
against the schema before anything reaches disk, and the reader checks files against it, so a
corrupt or hand-edited table fails with the file, the column and what was expected.

The ``gemm`` table is the GEMM schema that :mod:`simgpu.predict` trains on (and that adapters for
published datasets produce); its columns are documented in ``calibration/SCHEMA.md``.

Every number column has the range a measurement can have (a time is positive and below an hour
per call, a size is at least one byte, a temperature lies between -40 and 150 C) and every
column of a closed set of words lists them (``path`` is ``ca``, ``cg`` or ``shared``): a value
outside is refused, by the writer and by the reader, with the file, the line, the column, the
value and the range. The ranges are wide: they exclude what no GPU measures (a negative time,
a NaN, a zero size), not what a faster GPU might.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from simgpu.catalogue import DTYPES, KERNELS

#: Column types: "int", "float", "str", "bool".
_TYPES = ("int", "float", "str", "bool")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    unit: str
    doc: str
    required: bool = True  # a required column may not be empty
    added: bool = False  # added after runs were committed: older files lack it (read as empty)
    #: numbers: the range of a valid value (None: no bound); ``gt``: lower bound excluded
    low: float | None = None
    high: float | None = None
    gt: bool = False
    #: words: the values a ``str`` column may hold (empty: any text)
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} not in {_TYPES}")
        if self.choices and self.type != "str":
            raise ValueError(f"column {self.name}: choices are for str columns")

    def in_range(self, value: float) -> bool:
        """Whether the number ``value`` lies in the column's range (NaN never does)."""
        if math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.gt else value < self.low):
            return False
        return self.high is None or value <= self.high

    def expected(self) -> str:
        """The column's range (or choices) in words, as errors and SCHEMA.md give it."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type == "bool":
            return "True or False"
        if self.type == "str":
            return "text"
        kind = "an integer" if self.type == "int" else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.gt else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"<= {_num(self.high)}")
        return f"{kind} {' and '.join(parts)}" if parts else f"a finite {kind[2:]}"


def _num(x: float) -> str:
    """A bound in words: an integer as such, a power of two (or one less) as ``2^k``."""
    if float(x).is_integer():
        n = int(x)
        for k in range(20, 65):
            if n == 2**k:
                return f"2^{k}"
            if n == 2**k - 1:
                return f"2^{k} - 1"
        if abs(n) < 10**7:
            return str(n)
    return f"{x:g}"


@dataclass(frozen=True)
class TableSchema:
    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(
    name: str, type_: str, unit: str, doc: str, required: bool = True, added: bool = False,
    *, low: float | None = None, high: float | None = None, gt: bool = False,
    choices: tuple[str, ...] = (),
) -> Column:
    return Column(name, type_, unit, doc, required, added, low, high, gt, choices)


class _Range(TypedDict, total=False):
    low: float
    high: float
    gt: bool


# The ranges (see the module docstring and calibration/SCHEMA.md). Bounds are wide on purpose:
# the largest value of each kind in the bundled H100 runs is far inside them.
#: one call of a benchmark: positive, at most an hour
TIME: _Range = {"low": 0.0, "gt": True, "high": 3.6e6}
#: a count of things that exist (repetitions, blocks, elements, rows, steps): at least one
COUNT: _Range = {"low": 1, "high": 2.0**53}
#: a size in bytes: at least one byte, at most 1 PiB
BYTES: _Range = {"low": 1, "high": 2.0**50}
#: a rate (GB/s, TFLOP/s): positive, below 1e7 (an exabyte per second)
RATE: _Range = {"low": 0.0, "gt": True, "high": 1e7}
#: threads of one block (CUDA's limit)
THREADS: _Range = {"low": 1, "high": 1024}
#: a clock of the GPU
CLOCK: _Range = {"low": 0.0, "gt": True, "high": 1e5}
#: latencies in SM cycles or ns
LATENCY: _Range = {"low": 0.0, "gt": True, "high": 1e9}
#: a relative error (of a result check)
REL_ERR: _Range = {"low": 0.0, "high": 1e300}
#: the catalogue's kernels measured by a table
def _kernels(table: str) -> tuple[str, ...]:
    return tuple(k.name for k in KERNELS.values() if k.table == table)


#: Timing columns shared by every kernel table (CUDA-event timing, many repetitions).
TIMING = (
    _c("time_ms", "float", "ms", "median time of one call over the timed repetitions", **TIME),
    _c("time_ms_p10", "float", "ms", "10th percentile of the repetitions", **TIME),
    _c("time_ms_p90", "float", "ms", "90th percentile of the repetitions", **TIME),
    _c("reps", "int", "1", "timed repetitions (after warm-up)", **COUNT),
)

#: How a kernel table's time was taken (simgpu.calibrate.context.Context.time_kernel); runs
#: before these columns existed timed every call with CUDA events.
KERNEL_TIMING = (
    _c("time_method", "str", "", "'events': CUDA events around each call (a call shorter than "
       "the host's launch cost is timed at the host's pace); 'graph': back-to-back calls "
       "captured in a CUDA graph, time of a replay / graph_calls (the GPU's own pace)",
       required=False, added=True, choices=("events", "graph")),
    _c("time_ms_events", "float", "ms", "median CUDA-event time of one call (equals time_ms "
       "when time_method is 'events')", required=False, added=True, **TIME),
    _c("graph_calls", "int", "1", "calls per graph replay (0: no graph)", required=False,
       added=True, low=0, high=2.0**31),
    _c("graph_error", "str", "", "why graph timing was tried and not used", required=False,
       added=True),
)

#: Power columns, filled where the benchmark measured power (>= 1 s of back-to-back calls).
POWER = (
    _c("power_W", "float", "W", "average board power over the power window "
       "(total-energy counter where available, else mean of samples)", required=False,
       low=0.0, gt=True, high=1e4),
    _c("energy_J", "float", "J", "energy of one call: power_W x time of one call", required=False,
       low=0.0, gt=True, high=1e9),
    _c("power_window_s", "float", "s", "length of the power window", required=False,
       low=0.0, gt=True, high=86400.0),
    _c("power_source", "str", "", "'energy_counter' or 'sampled'", required=False,
       choices=("energy_counter", "sampled")),
    _c("sm_clock_MHz", "float", "MHz", "mean SM clock sampled during the window", required=False,
       **CLOCK),
    _c("mem_clock_MHz", "float", "MHz", "mean memory clock sampled during the window",
       required=False, **CLOCK),
    _c("temp_C", "float", "C", "highest GPU temperature during the window", required=False,
       low=-40.0, high=150.0),
    _c("throttle_reasons", "int", "bitmask", "NVML clock-event reasons OR-ed over the window",
       required=False, low=0, high=2**64 - 1),
)

PCHASE = TableSchema(
    "pchase",
    "Pointer-chase latency versus footprint: one thread, one dependent load per 128 B line, "
    "random cyclic order. `path` is 'ca' (default load, L1 cached), 'cg' (L2 only) or 'shared'.",
    (
        _c("path", "str", "", "load path: ca, cg or shared", choices=("ca", "cg", "shared")),
        _c("footprint_B", "int", "B", "bytes covered by the chain", **BYTES),
        _c("stride_B", "int", "B", "distance between chained words (line size)", **BYTES),
        _c("steps", "int", "1", "dependent loads timed per launch", **COUNT),
        _c("latency_cycles", "float", "cycles", "median SM cycles per load (clock64)", **LATENCY),
        _c("latency_cycles_min", "float", "cycles", "lowest of the repeated launches",
           **LATENCY),
        _c("latency_ns", "float", "ns", "median wall time per load (CUDA events / steps)",
           **LATENCY),
        _c("sm_clock_MHz", "float", "MHz", "SM clock read from NVML after the launches",
           required=False, **CLOCK),
        _c("launches", "int", "1", "timed launches, each from another start in the cycle",
           **COUNT),
    ),
)

STREAM = TableSchema(
    "stream",
    "STREAM-style bandwidth (float4 accesses, grid-stride) versus array size. Bytes counted: "
    "read 1x, write 1x, copy/scale 2x, triad 3x the array size.",
    (
        _c("op", "str", "", "read, write, copy, scale or triad",
           choices=("read", "write", "copy", "scale", "triad")),
        _c("array_B", "int", "B", "bytes of one array", **BYTES),
        _c("bytes_moved", "int", "B", "bytes read plus bytes written per call", **BYTES),
        _c("blocks", "int", "1", "thread blocks launched", **COUNT),
        _c("threads_per_block", "int", "1", "threads per block", **THREADS),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time_ms (1e9 B/s)", **RATE),
        *POWER,
    ),
)

SHARED = TableSchema(
    "shared",
    "Shared-memory bandwidth with a lane stride that sets the bank-conflict degree.",
    (
        _c("stride_words", "int", "words", "lane-to-lane stride in 4-byte words", low=1,
           high=2**20),
        _c("conflict_ways", "int", "1", "gcd(stride, 32): words per bank per warp load", low=1,
           high=32),
        _c("blocks", "int", "1", "thread blocks", **COUNT),
        _c("threads_per_block", "int", "1", "threads per block", **THREADS),
        _c("loads_per_thread", "int", "1", "4-byte shared loads per thread", **COUNT),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "useful bytes loaded / time (1e9 B/s)", **RATE),
        _c("bytes_per_clk_per_SM", "float", "B/cycle", "bandwidth / (SMs x SM clock)",
           required=False, low=0.0, gt=True, high=1e5),
        *POWER,
    ),
)

CACHE_BW = TableSchema(
    "cachebw",
    "Read bandwidth of L1 and L2: the same data read `passes` times in one launch (L2: whole "
    "array, L2-only loads; L1: each block re-reads its own region).",
    (
        _c("level", "str", "", "L1 or L2: the level the footprint is meant to hit",
           choices=("L1", "L2")),
        _c("footprint_B", "int", "B", "bytes read per pass by the whole grid", **BYTES),
        _c("per_block_B", "int", "B", "bytes each block re-reads (L1) or 0 (L2: grid-stride)",
           low=0, high=2.0**50),
        _c("passes", "int", "1", "times the footprint is read per launch", **COUNT),
        _c("blocks", "int", "1", "thread blocks", **COUNT),
        _c("threads_per_block", "int", "1", "threads per block", **THREADS),
        _c("bytes_moved", "int", "B", "footprint x passes", **BYTES),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time", **RATE),
        _c("bytes_per_clk_per_SM", "float", "B/cycle", "bandwidth / (SMs x SM clock)",
           required=False, low=0.0, gt=True, high=1e5),
        *POWER,
    ),
)

GEMM = TableSchema(
    "gemm",
    "GEMM runtime and power, C = A x B, row-major. The schema simgpu.predict trains on.",
    (
        _c("device", "str", "", "simgpu device name (models/<device>.toml)"),
        _c("gpu_name", "str", "", "name the driver reports"),
        _c("kernel", "str", "", "cublas, sgemm_tiled, sgemm_regblock, sgemm_naive or mma_gemm",
           choices=_kernels("gemm")),
        _c("dtype", "str", "", "input type: fp32, tf32, fp16, bf16", choices=DTYPES),
        _c("accum_dtype", "str", "", "accumulator type", choices=DTYPES),
        _c("layout", "str", "", "operand layout: nn = A and B row-major, not transposed",
           choices=("nn", "nt", "tn", "tt")),
        _c("M", "int", "1", "rows of A and C", low=1, high=2**31 - 1),
        _c("N", "int", "1", "columns of B and C", low=1, high=2**31 - 1),
        _c("K", "int", "1", "inner dimension", low=1, high=2**31 - 1),
        _c("tile_m", "int", "1", "block tile rows (0 = chosen by the library)", low=0,
           high=4096),
        _c("tile_n", "int", "1", "block tile columns (0 = chosen by the library)", low=0,
           high=4096),
        _c("tile_k", "int", "1", "block tile depth (0 = chosen by the library)", low=0,
           high=4096),
        _c("thread_tile_m", "int", "1", "C rows per thread (0 = library)", low=0, high=1024),
        _c("thread_tile_n", "int", "1", "C columns per thread (0 = library)", low=0, high=1024),
        _c("threads_per_block", "int", "1", "threads per block (0 = library)", low=0,
           high=1024),
        _c("split_k", "int", "1", "split-K factor (1 = none, 0 = library)", low=0, high=2**20),
        _c("stages", "int", "1", "shared-memory pipeline stages (0 = library)", low=0,
           high=1024),
        _c("flops", "float", "FLOP", "2 M N K", low=0.0, gt=True, high=1e30),
        *TIMING,
        *KERNEL_TIMING,
        _c("tflops", "float", "TFLOP/s", "flops / time_ms", **RATE),
        *POWER,
        _c("rel_err", "float", "1", "||C - ref|| / ||ref|| on sampled rows, ref in float64 "
           "(empty if not finite)", required=False, **REL_ERR),
        _c("check_ok", "bool", "", "rel_err within the tolerance of the dtype"),
    ),
)

TRANSPOSE = TableSchema(
    "transpose",
    "Out-of-place float32 transpose; bytes = 2 x rows x cols x 4.",
    (
        _c("kernel", "str", "", "transpose_naive or transpose_tiled",
           choices=_kernels("transpose")),
        _c("rows", "int", "1", "rows of the input", low=1, high=2**31 - 1),
        _c("cols", "int", "1", "columns of the input", low=1, high=2**31 - 1),
        _c("bytes_moved", "int", "B", "bytes read plus written", **BYTES),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time", **RATE),
        _c("check_ok", "bool", "", "output equals the reference transpose"),
    ),
)

REDUCTION = TableSchema(
    "reduction",
    "Sum of n float32 values (one pass, atomics per block).",
    (
        _c("n", "int", "1", "elements", **COUNT),
        _c("bytes_moved", "int", "B", "bytes read", **BYTES),
        _c("blocks", "int", "1", "thread blocks", **COUNT),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time", **RATE),
        _c("rel_err", "float", "1", "relative error against a float64 sum", required=False,
           **REL_ERR),
        _c("check_ok", "bool", "", "rel_err within 1e-4"),
    ),
)

GEMV = TableSchema(
    "gemv",
    "y = A x, float32, A row-major M x N, one warp per row.",
    (
        _c("M", "int", "1", "rows", low=1, high=2**31 - 1),
        _c("N", "int", "1", "columns", low=1, high=2**31 - 1),
        _c("bytes_moved", "int", "B", "4 (M N + N + M)", **BYTES),
        _c("flops", "float", "FLOP", "2 M N", low=0.0, gt=True, high=1e30),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time", **RATE),
        _c("rel_err", "float", "1", "relative error against float64", required=False,
           **REL_ERR),
        _c("check_ok", "bool", "", "rel_err within 1e-4"),
    ),
)

PCIE = TableSchema(
    "pcie",
    "Host<->device copies through the runtime: pinned (async) and pageable (staged), "
    "and both directions at once on two streams.",
    (
        _c("direction", "str", "", "h2d, d2h or bidir (both at once, bytes = both ways)",
           choices=("h2d", "d2h", "bidir")),
        _c("host_memory", "str", "", "pinned or pageable", choices=("pinned", "pageable")),
        _c("size_B", "int", "B", "bytes per copy (per direction)", **BYTES),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes / time (bidir: total of both ways)",
           **RATE),
        _c("wall_us", "float", "us", "median host wall time per copy (synchronised)",
           low=0.0, gt=True, high=3.6e9),
        _c("check_ok", "bool", "", "data arrived intact"),
    ),
)

LAUNCH = TableSchema(
    "launch",
    "Kernel launch overhead (empty kernel) and idle board power.",
    (
        _c("metric", "str", "", "what was measured"),
        _c("value", "float", "", "the figure (a launch time in us or an idle power in W)",
           low=0.0, gt=True, high=1e9),
        _c("unit", "str", "", "its unit"),
        _c("detail", "str", "", "how it was measured", required=False),
    ),
)

#: Every table a run can hold, by name.
TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (PCHASE, STREAM, CACHE_BW, SHARED, GEMM, TRANSPOSE, REDUCTION, GEMV, PCIE, LAUNCH)
}


def markdown_tables() -> str:
    """Every table as a Markdown section (name, description, columns): the body of SCHEMA.md."""
    out: list[str] = []
    for table in TABLES.values():
        out.append(f"### `{table.name}.csv`\n\n{table.doc}\n")
        out.append("| column | type | unit | required | valid values | meaning |")
        out.append("|---|---|---|---|---|---|")
        for c in table.columns:
            unit = c.unit if c.unit else "-"
            doc = c.doc.replace("|", "\\|") + (" (absent from older runs)" if c.added else "")
            valid = "any" if c.type == "str" and not c.choices else c.expected()
            out.append(f"| `{c.name}` | {c.type} | {unit} | {'yes' if c.required else 'no'} "
                       f"| {valid} | {doc} |")
        out.append("")
    return "\n".join(out)
