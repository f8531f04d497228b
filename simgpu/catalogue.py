"""The kernel catalogue: every kernel simgpu knows, as data.

One entry per kernel says where its CUDA source is, which workload class in
:mod:`simgpu.workloads` describes it (and so generates its trace, gives its analytical estimate
and its predictor features, and matches its rows in a calibration run), which calibration table
measures it, which compile-time variants exist with their launch geometry, which data types it
runs, and which of the four views can answer for it. Every command learns these facts here
(``simgpu compare``, ``simulate``, ``sweep``, ``validate``, the calibration sweep and the
analytical model's kernel families); none re-encodes them.

Adding a kernel: its CUDA source in ``kernels/``, a workload class in :mod:`simgpu.workloads`
(``launch``/``make_block`` for the trace, ``estimate``, ``from_row``/``row_key`` for the
calibration table), and one :class:`Kernel` entry in :data:`KERNELS`.

This module is data only: it imports nothing of simgpu but its errors, so every layer (the
calibration path on a GPU machine included) may read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from simgpu.errors import SimgpuError

__all__ = [
    "DTYPES",
    "FAMILIES",
    "KERNELS",
    "VIEWS",
    "Kernel",
    "Variant",
    "family_of",
    "get",
    "kernels_of_kind",
]

#: The four views, in the order tables show them.
VIEWS = ("measured", "simulated", "analytical", "learned")
#: GEMM data types simgpu models (input type; see simgpu.analytical.params.DTYPE_BYTES).
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
#: The analytical model's GEMM kernel families: how a kernel stages its tiles and what limits it
#: (a vendor library's tensor-core/SIMT kernels, register-blocked, shared-memory tiled, naive).
FAMILIES = ("library", "regblock", "tiled", "naive")

ALL_VIEWS = frozenset(VIEWS)
#: views of a kernel simgpu has no trace of (closed-source library code, published datasets)
NO_TRACE = frozenset({"measured", "analytical", "learned"})


@dataclass(frozen=True)
class Variant:
    """One compile-time variant of a kernel, with the launch it implies."""

    #: the calibration sweep's name for it (``variant`` of a gemm point)
    name: str
    #: the workload class's parameters this variant fixes (``TiledGemm(tile=16)``)
    params: Mapping[str, int]
    #: compile-time constants passed to the CUDA source (``-DTILE=16``)
    defines: Mapping[str, int]
    #: block tile M x N x K
    tile: tuple[int, int, int]
    #: C elements per thread, M x N
    thread_tile: tuple[int, int]
    threads_per_block: int
    #: the largest M, N or K the calibration sweep times it at (the slow variants stop earlier)
    max_dim: int
    #: registers a thread takes, per data type, as the compiler allocates them (``nvcc -Xptxas
    #: -v``); empty where not recorded. The one source of these figures: the simulated launch
    #: and the analytical occupancy both read them (simgpu.analytical.gemm.launch_registers).
    regs_per_thread: Mapping[str, int] = field(default_factory=dict)

    def analytical_tiles(self) -> dict[str, int]:
        """The tile arguments of :func:`simgpu.analytical.gemm` for this variant."""
        return {
            "tile_m": self.tile[0],
            "tile_n": self.tile[1],
            "tile_k": self.tile[2],
            "thread_tile_m": self.thread_tile[0],
            "thread_tile_n": self.thread_tile[1],
            "threads_per_block": self.threads_per_block,
        }


@dataclass(frozen=True)
class Kernel:
    """One kernel: what it is, where it lives, and who answers for it."""

    name: str
    #: what it computes: gemm, gemv, stream, pchase, transpose, reduction, pcie
    kind: str
    description: str
    #: file under ``kernels/`` and the ``extern "C"`` function name (None: not our source); a
    #: source kernel of several data types has one function per type, ``<function>_<dtype>``
    source: str | None
    function: str | None
    #: class in :mod:`simgpu.workloads` that describes it (None: a dataset's kernel, known to
    #: the analytical model and the predictor only through its family and tiles)
    workload: str | None
    #: calibration table that measures it (None: not measured by ``simgpu calibrate``)
    table: str | None
    views: frozenset[str]
    #: GEMM family of the analytical model (:data:`FAMILIES`); "" for other kinds
    family: str = ""
    dtypes: tuple[str, ...] = ("fp32",)
    #: in the order the calibration sweep measures them
    variants: tuple[Variant, ...] = field(default_factory=tuple)
    #: the variant a command uses when none is asked for ("": the first)
    default_variant: str = ""
    #: why a view missing from :attr:`views` cannot answer, where more can be said than that
    why_not: Mapping[str, str] = field(default_factory=dict)

    def unavailable(self, view: str) -> str:
        """Why ``view`` cannot answer for this kernel."""
        return self.why_not.get(view) or (
            f"the {view} view has no model of {self.name} (it has:"
            f" {', '.join(v for v in VIEWS if v in self.views)})"
        )

    def variant(self, tile: int = 0) -> Variant:
        """The variant whose block tile M is ``tile`` (0: the default one)."""
        if not self.variants:
            raise SimgpuError(f"kernel {self.name} has no compile-time variants to choose from")
        if not tile:
            return self.variant_named(self.default_variant) if self.default_variant else (
                self.variants[0])
        for v in self.variants:
            if v.tile[0] == tile:
                return v
        raise SimgpuError(
            f"tile {tile} for {self.name}: expected one of {[v.tile[0] for v in self.variants]}"
            f" ({self.source} variants)"
        )

    def variant_named(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise SimgpuError(
            f"variant {name!r} of {self.name}: expected one of {[v.name for v in self.variants]}"
        )

    def function_for(self, dtype: str) -> str:
        """The ``extern "C"`` function that runs ``dtype`` (see :attr:`function`)."""
        if self.function is None:
            raise SimgpuError(f"kernel {self.name} is not one of simgpu's sources")
        self.check_dtype(dtype)
        return self.function if len(self.dtypes) == 1 else f"{self.function}_{dtype}"

    def check_dtype(self, dtype: str) -> None:
        if dtype not in self.dtypes:
            raise SimgpuError(f"kernel {self.name} runs {', '.join(self.dtypes)}, not {dtype!r}")


def _tiled(t: int, max_dim: int) -> Variant:
    return Variant(f"tile{t}", {"tile": t}, {"TILE": t}, (t, t, t), (1, 1), t * t, max_dim)


def _regblock(bm: int, bk: int, tm: int, max_dim: int) -> Variant:
    params = {"BM": bm, "BN": bm, "BK": bk, "TM": tm, "TN": tm}
    threads = (bm // tm) * (bm // tm)
    return Variant(f"reg{bm}", params, dict(params), (bm, bm, bk), (tm, tm), threads, max_dim)


def _mma(bm: int, bn: int, warps_m: int, warps_n: int, stages: int,
         regs: Mapping[str, int]) -> Variant:
    """A variant of kernels/mma_gemm.cu: block tile bm x bn x 64 (128 bytes of a 16-bit
    operand per row), warps_m x warps_n warps, ``stages`` shared-memory buffers, ``regs``
    registers a thread per data type. Its thread tile is the accumulators an mma.sync m16n8k16
    fragment gives a lane: rows g and g + 8 of every 16, columns 2t and 2t + 1 of every 8 of
    its warp tile."""
    wm, wn = bm // warps_m, bn // warps_n
    params = {"tile_m": bm, "tile_n": bn, "stages": stages, "warps_m": warps_m,
              "warps_n": warps_n}
    defines = {"BM": bm, "BN": bn, "BK": 64, "WARPS_M": warps_m, "WARPS_N": warps_n,
               "STAGES": stages}
    return Variant(f"mma{bm}x{bn}", params, defines, (bm, bn, 64), (wm // 8, wn // 4),
                   32 * warps_m * warps_n, 8192, regs)


_GEMM_SOURCE = "sgemm.cu"

KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel(
            "cublas", "gemm", "cuBLAS GEMM (cublasGemmEx; tensor cores for tf32/fp16/bf16/fp8)",
            None, None, "LibraryGemm", "gemm", ALL_VIEWS, family="library", dtypes=DTYPES,
            # simulated: its tensor-core GEMMs, as the CUTLASS-like kernel of the analytical
            # library search (simgpu.workloads.tensor_gemm); its fp32 GEMMs are SIMT kernels
            why_not={"simulated": "cuBLAS's fp32 GEMMs run closed-source SIMT kernels simgpu has"
                     " no trace of (its tf32/fp16/bf16/fp8 GEMMs are simulated as the CUTLASS-like"
                     " kernel of the library search; for fp32 try --kernel sgemm_tiled)"},
        ),
        Kernel(
            "sgemm_naive", "gemm", "one thread per C element, A and B read from global memory",
            _GEMM_SOURCE, "sgemm_naive", "NaiveGemm", "gemm", ALL_VIEWS, family="naive",
            variants=(Variant("naive16", {}, {}, (16, 16, 1), (1, 1), 256, 4096),),
        ),
        Kernel(
            "sgemm_tiled", "gemm", "TILE x TILE tiles of A and B in shared memory",
            _GEMM_SOURCE, "sgemm_tiled", "TiledGemm", "gemm", ALL_VIEWS, family="tiled",
            variants=(_tiled(8, 4096), _tiled(16, 8192), _tiled(32, 8192)),
            default_variant="tile16",
        ),
        Kernel(
            "sgemm_regblock", "gemm", "BM x BN x BK block tile, TM x TN C elements per thread",
            _GEMM_SOURCE, "sgemm_regblock", "RegBlockGemm", "gemm", ALL_VIEWS,
            family="regblock", variants=(_regblock(64, 16, 4, 8192), _regblock(128, 8, 8, 8192)),
        ),
        Kernel(
            "mma_gemm", "gemm", "tensor-core GEMM of the Ampere kind: cp.async multistage,"
            " ldmatrix, mma.sync m16n8k16 (tf32: m16n8k8), fp32 accumulators (sm_80 and later;"
            " N and K multiples of 8)", "mma_gemm.cu", "mma_gemm", "MmaGemm", "gemm", ALL_VIEWS,
            # the analytical model's library family: a tensor-core kernel that stages its tiles
            # as the library's do (simgpu.analytical.gemm), here with its own tile
            family="library", dtypes=("fp16", "bf16", "tf32"),
            # mma128x128: 64 x 32 warp tiles; mma64x64: 32 x 32 warp tiles for shapes with few
            # 128 x 128 tiles. Registers a thread: nvcc 13.0 -Xptxas -v, no spills: fp16 and
            # bf16 the same for sm_80, sm_89 and sm_90; tf32 sm_80 and sm_89 (sm_90: 208 and
            # 159, the same allocation of 8 a thread). tests/test_mma_gemm.py checks them.
            variants=(_mma(128, 128, 2, 4, 3, {"fp16": 168, "bf16": 168, "tf32": 206}),
                      _mma(64, 64, 2, 2, 4, {"fp16": 116, "bf16": 116, "tf32": 158})),
        ),
        Kernel(
            "cutlass", "gemm", "CUTLASS SGEMM of the GPPerf dataset (RTX 4070)",
            None, None, None, None, frozenset({"analytical", "learned"}), family="regblock",
        ),
        Kernel(
            "clblast", "gemm", "CLBlast-style tunable SGEMM of the UCI SGEMM dataset (GTX 680)",
            None, None, None, None, frozenset({"analytical", "learned"}), family="regblock",
        ),
        Kernel(
            "sgemv_warp", "gemv", "y = A x, one warp per row", "gemv.cu", "sgemv_warp", "Gemv",
            "gemv", frozenset({"measured", "simulated", "analytical"}),
        ),
        Kernel(
            "reduce_sum", "reduction", "float4 grid-stride sum, warp shuffles, one atomic per"
            " block", "reduction.cu", "reduce_sum", "Reduction", "reduction",
            frozenset({"measured", "simulated", "analytical"}),
        ),
        Kernel(
            "transpose_naive", "transpose", "out[j][i] = in[i][j], uncoalesced writes",
            "transpose.cu", "transpose_naive", "Transpose", "transpose",
            frozenset({"measured", "simulated", "analytical"}),
        ),
        Kernel(
            "transpose_tiled", "transpose", "32 x 33 padded shared-memory tile",
            "transpose.cu", "transpose_tiled", "Transpose", "transpose",
            frozenset({"measured", "simulated", "analytical"}),
        ),
        *(
            Kernel(
                f"stream_{op}", "stream", f"STREAM {op}, float4 grid-stride", "stream.cu",
                f"stream_{op}", "Stream", "stream",
                frozenset({"measured", "simulated", "analytical"}),
            )
            for op in ("read", "write", "copy", "scale", "triad")
        ),
        *(
            Kernel(
                f"pchase_{op}", "pchase",
                f"one thread chasing pointers ({'L1-cached' if op == 'ca' else 'L1-bypassing'}"
                " loads)", "pchase.cu", f"pchase_{op}", "PointerChase", "pchase",
                frozenset({"measured", "simulated", "analytical"}),
            )
            for op in ("ca", "cg")
        ),
        Kernel(
            "memcpy", "pcie", "host-device copy over the host link (cudaMemcpyAsync)",
            None, None, "HostCopy", "pcie", frozenset({"measured", "simulated", "analytical"}),
        ),
    )
}


def get(name: str) -> Kernel:
    """The catalogue entry of kernel ``name``; a clear error naming the known ones."""
    try:
        return KERNELS[name]
    except KeyError:
        raise SimgpuError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}") from None


def kernels_of_kind(kind: str) -> list[Kernel]:
    """The kernels that compute ``kind`` (gemm, stream, ...), in catalogue order."""
    return [k for k in KERNELS.values() if k.kind == kind]


def family_of(name: str) -> str:
    """The analytical GEMM family of GEMM kernel ``name``."""
    k = get(name)
    if k.kind != "gemm":
        raise SimgpuError(f"kernel {name!r} is a {k.kind} kernel, not a GEMM")
    return k.family
