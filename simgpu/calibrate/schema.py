"""Table schemas of a calibration run.

Every table a run writes is declared here: column name, type and unit. The writer checks rows
against the schema before anything reaches disk, and the reader checks files against it, so a
corrupt or hand-edited table fails with the file, the column and what was expected.

The ``gemm`` table is the GEMM schema that :mod:`simgpu.predict` trains on (and that adapters for
published datasets produce); its columns are documented in ``calibration/SCHEMA.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} not in {_TYPES}")


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
    name: str, type_: str, unit: str, doc: str, required: bool = True, added: bool = False
) -> Column:
    return Column(name, type_, unit, doc, required, added)


#: Timing columns shared by every kernel table (CUDA-event timing, many repetitions).
TIMING = (
    _c("time_ms", "float", "ms", "median time of one call over the timed repetitions"),
    _c("time_ms_p10", "float", "ms", "10th percentile of the repetitions"),
    _c("time_ms_p90", "float", "ms", "90th percentile of the repetitions"),
    _c("reps", "int", "1", "timed repetitions (after warm-up)"),
)

#: How a kernel table's time was taken (simgpu.calibrate.context.Context.time_kernel); runs
#: before these columns existed timed every call with CUDA events.
KERNEL_TIMING = (
    _c("time_method", "str", "", "'events': CUDA events around each call (a call shorter than "
       "the host's launch cost is timed at the host's pace); 'graph': back-to-back calls "
       "captured in a CUDA graph, time of a replay / graph_calls (the GPU's own pace)",
       required=False, added=True),
    _c("time_ms_events", "float", "ms", "median CUDA-event time of one call (equals time_ms "
       "when time_method is 'events')", required=False, added=True),
    _c("graph_calls", "int", "1", "calls per graph replay (0: no graph)", required=False,
       added=True),
    _c("graph_error", "str", "", "why graph timing was tried and not used", required=False,
       added=True),
)

#: Power columns, filled where the benchmark measured power (>= 1 s of back-to-back calls).
POWER = (
    _c("power_W", "float", "W", "average board power over the power window "
       "(total-energy counter where available, else mean of samples)", required=False),
    _c("energy_J", "float", "J", "energy of one call: power_W x time of one call", required=False),
    _c("power_window_s", "float", "s", "length of the power window", required=False),
    _c("power_source", "str", "", "'energy_counter' or 'sampled'", required=False),
    _c("sm_clock_MHz", "float", "MHz", "mean SM clock sampled during the window", required=False),
    _c("mem_clock_MHz", "float", "MHz", "mean memory clock sampled during the window",
       required=False),
    _c("temp_C", "float", "C", "highest GPU temperature during the window", required=False),
    _c("throttle_reasons", "int", "bitmask", "NVML clock-event reasons OR-ed over the window",
       required=False),
)

PCHASE = TableSchema(
    "pchase",
    "Pointer-chase latency versus footprint: one thread, one dependent load per 128 B line, "
    "random cyclic order. `path` is 'ca' (default load, L1 cached), 'cg' (L2 only) or 'shared'.",
    (
        _c("path", "str", "", "load path: ca, cg or shared"),
        _c("footprint_B", "int", "B", "bytes covered by the chain"),
        _c("stride_B", "int", "B", "distance between chained words (line size)"),
        _c("steps", "int", "1", "dependent loads timed per launch"),
        _c("latency_cycles", "float", "cycles", "median SM cycles per load (clock64)"),
        _c("latency_cycles_min", "float", "cycles", "lowest of the repeated launches"),
        _c("latency_ns", "float", "ns", "median wall time per load (CUDA events / steps)"),
        _c("sm_clock_MHz", "float", "MHz", "SM clock read from NVML after the launches",
           required=False),
        _c("launches", "int", "1", "timed launches, each from another start in the cycle"),
    ),
)

STREAM = TableSchema(
    "stream",
    "STREAM-style bandwidth (float4 accesses, grid-stride) versus array size. Bytes counted: "
    "read 1x, write 1x, copy/scale 2x, triad 3x the array size.",
    (
        _c("op", "str", "", "read, write, copy, scale or triad"),
        _c("array_B", "int", "B", "bytes of one array"),
        _c("bytes_moved", "int", "B", "bytes read plus bytes written per call"),
        _c("blocks", "int", "1", "thread blocks launched"),
        _c("threads_per_block", "int", "1", "threads per block"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time_ms (1e9 B/s)"),
        *POWER,
    ),
)

SHARED = TableSchema(
    "shared",
    "Shared-memory bandwidth with a lane stride that sets the bank-conflict degree.",
    (
        _c("stride_words", "int", "words", "lane-to-lane stride in 4-byte words"),
        _c("conflict_ways", "int", "1", "gcd(stride, 32): words per bank per warp load"),
        _c("blocks", "int", "1", "thread blocks"),
        _c("threads_per_block", "int", "1", "threads per block"),
        _c("loads_per_thread", "int", "1", "4-byte shared loads per thread"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "useful bytes loaded / time (1e9 B/s)"),
        _c("bytes_per_clk_per_SM", "float", "B/cycle", "bandwidth / (SMs x SM clock)",
           required=False),
        *POWER,
    ),
)

CACHE_BW = TableSchema(
    "cachebw",
    "Read bandwidth of L1 and L2: the same data read `passes` times in one launch (L2: whole "
    "array, L2-only loads; L1: each block re-reads its own region).",
    (
        _c("level", "str", "", "L1 or L2: the level the footprint is meant to hit"),
        _c("footprint_B", "int", "B", "bytes read per pass by the whole grid"),
        _c("per_block_B", "int", "B", "bytes each block re-reads (L1) or 0 (L2: grid-stride)"),
        _c("passes", "int", "1", "times the footprint is read per launch"),
        _c("blocks", "int", "1", "thread blocks"),
        _c("threads_per_block", "int", "1", "threads per block"),
        _c("bytes_moved", "int", "B", "footprint x passes"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time"),
        _c("bytes_per_clk_per_SM", "float", "B/cycle", "bandwidth / (SMs x SM clock)",
           required=False),
        *POWER,
    ),
)

GEMM = TableSchema(
    "gemm",
    "GEMM runtime and power, C = A x B, row-major. The schema simgpu.predict trains on.",
    (
        _c("device", "str", "", "simgpu device name (models/<device>.toml)"),
        _c("gpu_name", "str", "", "name the driver reports"),
        _c("kernel", "str", "", "cublas, sgemm_tiled, sgemm_regblock or sgemm_naive"),
        _c("dtype", "str", "", "input type: fp32, tf32, fp16, bf16"),
        _c("accum_dtype", "str", "", "accumulator type"),
        _c("layout", "str", "", "operand layout: nn = A and B row-major, not transposed"),
        _c("M", "int", "1", "rows of A and C"),
        _c("N", "int", "1", "columns of B and C"),
        _c("K", "int", "1", "inner dimension"),
        _c("tile_m", "int", "1", "block tile rows (0 = chosen by the library)"),
        _c("tile_n", "int", "1", "block tile columns (0 = chosen by the library)"),
        _c("tile_k", "int", "1", "block tile depth (0 = chosen by the library)"),
        _c("thread_tile_m", "int", "1", "C rows per thread (0 = library)"),
        _c("thread_tile_n", "int", "1", "C columns per thread (0 = library)"),
        _c("threads_per_block", "int", "1", "threads per block (0 = library)"),
        _c("split_k", "int", "1", "split-K factor (1 = none, 0 = library)"),
        _c("stages", "int", "1", "shared-memory pipeline stages (0 = library)"),
        _c("flops", "float", "FLOP", "2 M N K"),
        *TIMING,
        *KERNEL_TIMING,
        _c("tflops", "float", "TFLOP/s", "flops / time_ms"),
        *POWER,
        _c("rel_err", "float", "1", "||C - ref|| / ||ref|| on sampled rows, ref in float64 "
           "(empty if not finite)", required=False),
        _c("check_ok", "bool", "", "rel_err within the tolerance of the dtype"),
    ),
)

TRANSPOSE = TableSchema(
    "transpose",
    "Out-of-place float32 transpose; bytes = 2 x rows x cols x 4.",
    (
        _c("kernel", "str", "", "transpose_naive or transpose_tiled"),
        _c("rows", "int", "1", "rows of the input"),
        _c("cols", "int", "1", "columns of the input"),
        _c("bytes_moved", "int", "B", "bytes read plus written"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time"),
        _c("check_ok", "bool", "", "output equals the reference transpose"),
    ),
)

REDUCTION = TableSchema(
    "reduction",
    "Sum of n float32 values (one pass, atomics per block).",
    (
        _c("n", "int", "1", "elements"),
        _c("bytes_moved", "int", "B", "bytes read"),
        _c("blocks", "int", "1", "thread blocks"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time"),
        _c("rel_err", "float", "1", "relative error against a float64 sum", required=False),
        _c("check_ok", "bool", "", "rel_err within 1e-4"),
    ),
)

GEMV = TableSchema(
    "gemv",
    "y = A x, float32, A row-major M x N, one warp per row.",
    (
        _c("M", "int", "1", "rows"),
        _c("N", "int", "1", "columns"),
        _c("bytes_moved", "int", "B", "4 (M N + N + M)"),
        _c("flops", "float", "FLOP", "2 M N"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes_moved / time"),
        _c("rel_err", "float", "1", "relative error against float64", required=False),
        _c("check_ok", "bool", "", "rel_err within 1e-4"),
    ),
)

PCIE = TableSchema(
    "pcie",
    "Host<->device copies through the runtime: pinned (async) and pageable (staged), "
    "and both directions at once on two streams.",
    (
        _c("direction", "str", "", "h2d, d2h or bidir (both at once, bytes = both ways)"),
        _c("host_memory", "str", "", "pinned or pageable"),
        _c("size_B", "int", "B", "bytes per copy (per direction)"),
        *TIMING,
        _c("bandwidth_GBps", "float", "GB/s", "bytes / time (bidir: total of both ways)"),
        _c("wall_us", "float", "us", "median host wall time per copy (synchronised)"),
        _c("check_ok", "bool", "", "data arrived intact"),
    ),
)

LAUNCH = TableSchema(
    "launch",
    "Kernel launch overhead (empty kernel) and idle board power.",
    (
        _c("metric", "str", "", "what was measured"),
        _c("value", "float", "", "the figure"),
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
        out.append("| column | type | unit | required | meaning |")
        out.append("|---|---|---|---|---|")
        for c in table.columns:
            unit = c.unit if c.unit else "-"
            doc = c.doc.replace("|", "\\|") + (" (absent from older runs)" if c.added else "")
            out.append(f"| `{c.name}` | {c.type} | {unit} | {'yes' if c.required else 'no'} "
                       f"| {doc} |")
        out.append("")
    return "\n".join(out)
