"""Compute-side benchmarks: GEMM (own tiled kernels and cuBLAS), transpose, reduction, GEMV."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simgpu import catalogue
from simgpu.calibrate.context import Context
from simgpu.errors import SimgpuError

# cuBLAS enums (cublas_api.h / library_types.h)
_CUDA_R_32F, _CUDA_R_16F, _CUDA_R_16BF = 0, 2, 14
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32 = 68, 77
_OP_N, _GEMM_DEFAULT = 0, -1
# CUfunction_attribute (cuda.h): the dynamic shared memory a function may be launched with
_CU_MAX_DYNAMIC_SHARED = 8

#: Relative-error tolerance of C against a float64 reference (cupy.matmul of the inputs in
#: float64 on the GPU, 64 sampled rows), per input dtype, for cuBLAS and our kernels alike. fp32
#: allows sqrt(K) growth of float32 rounding; tf32 keeps 10 mantissa bits; fp16/bf16 outputs are
#: rounded to 11 and 8 bits (kernels/mma_gemm.cu accumulates in fp32, as cuBLAS does).
TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 2e-2}

#: Our own GEMM kernels (kernels/sgemm.cu, kernels/mma_gemm.cu) and their compile-time
#: variants, in the order the sweep measures them: the kernel catalogue's (simgpu.catalogue).
OWN_GEMMS: tuple[tuple[catalogue.Kernel, catalogue.Variant], ...] = tuple(
    (k, v) for k in catalogue.kernels_of_kind("gemm") if k.source is not None
    for v in k.variants
)
#: The tensor-core kernel of our own: mma.sync, cp.async and ldmatrix need sm_80 or later.
MMA_SOURCE, MMA_MIN_CC = "mma_gemm.cu", (8, 0)


def mma_fits(m: int, n: int, k: int) -> bool:
    """Whether kernels/mma_gemm.cu runs (M, N, K): N and K multiples of 8 (whole 16-byte
    chunks of 16-bit rows)."""
    return n % 8 == 0 and k % 8 == 0


def _has_mma(ctx: Context) -> bool:
    cc = str(ctx.props.get("compute_capability", "0.0")).split(".")
    return (int(cc[0]), int(cc[1]) if len(cc) > 1 else 0) >= MMA_MIN_CC

_MMA_VARIANTS = {v.name: (k, v) for k, v in OWN_GEMMS if k.source == MMA_SOURCE}


def gemm_shapes(level: str, seed: int) -> list[tuple[int, int, int]]:
    """(M, N, K) triples: squares from 256 to 8192 (powers of two and not) plus rectangles,
    one of each in turn, so that a sweep stopped early (``--deadline-s``, a lost GPU) still holds
    both kinds across the size range. Run 20261122T154403Z, measured in the order squares then
    rectangles, stopped after 179 of 286 points with 11 of the 16 rectangles unmeasured."""
    if level != "full":
        return [(512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096),
                (1000, 3000, 2000)]
    squares = [256, 384, 512, 768, 1000, 1024, 1536, 2048, 3000, 3072, 4096, 5120, 6144, 8192]
    dims = [256, 320, 512, 768, 1000, 1024, 1280, 1536, 2000, 2048, 2560, 3072, 4096, 5000,
            6144, 8192]
    rng = np.random.default_rng(seed)
    rect: list[tuple[int, int, int]] = []
    while len(rect) < 16:
        m, n, k = (int(x) for x in rng.choice(dims, size=3))
        if len({m, n, k}) > 1 and (m, n, k) not in rect and m * n * k <= 4096**3:
            rect.append((m, n, k))
    out: list[tuple[int, int, int]] = []
    for i in range(max(len(squares), len(rect))):
        if i < len(squares):
            out.append((squares[i], squares[i], squares[i]))
        if i < len(rect):
            out.append(rect[i])
    return out


def _bf16_from_f32(cp: Any, x: Any) -> Any:
    """Round float32 to bfloat16 (nearest even); the bits are kept in a uint16 array."""
    u = x.view(cp.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(cp.uint16)


def _f64(cp: Any, x: Any, dtype: str) -> Any:
    if dtype == "bf16":
        return (x.astype(cp.uint32) << 16).view(cp.float32).astype(cp.float64)
    return x.astype(cp.float64)


def _cublas() -> Any:
    try:  # CuPy is optional: imported only where a GPU is used
        from cupy_backends.cuda.libs import cublas
    except ImportError:  # older CuPy
        from cupy.cuda import cublas
    return cublas


def _check_rows(cp: Any, A: Any, B: Any, C: Any, dtype: str, rows: np.ndarray) -> float:
    r = cp.asarray(rows)
    ref = _f64(cp, A[r], dtype) @ _f64(cp, B, dtype)
    got = _f64(cp, C[r], dtype)
    return float(cp.linalg.norm(got - ref) / cp.linalg.norm(ref))


class Gemm:
    """GEMM sweep for the predictor: own kernels across tile shapes, cuBLAS across dtypes."""

    table = "gemm"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        shapes = gemm_shapes(ctx.level, ctx.seed)
        mma = _has_mma(ctx)
        pts: list[dict[str, Any]] = []
        for m, n, k in shapes:  # grouped so that points sharing operands run one after another
            # cuBLAS in each dtype, then our kernels of those dtypes (tf32 shares fp32's
            # operands)
            for dtypes in (("fp32", "tf32"), ("fp16",), ("bf16",)):
                for dtype in dtypes:
                    pts.append({"kernel": "cublas", "variant": "cublas", "dtype": dtype,
                                "M": m, "N": n, "K": k})
                for own in dtypes:
                    for entry, variant in OWN_GEMMS:
                        if own not in entry.dtypes or max(m, n, k) > variant.max_dim:
                            continue
                        if entry.source == MMA_SOURCE and not (mma and mma_fits(m, n, k)):
                            continue
                        pts.append({"kernel": "own", "variant": variant.name, "dtype": own,
                                    "M": m, "N": n, "K": k})
        return pts

    def _operands(self, ctx: Context, m: int, n: int, k: int, dtype: str) -> tuple[Any, ...]:
        cp = ctx.cp
        storage = "fp32" if dtype == "tf32" else dtype
        key = ("gemm", m, n, k, storage)
        if ctx.scratch.get("gemm_key") != key:
            ctx.scratch.clear()
            ctx.cp.get_default_memory_pool().free_all_blocks()
            rs = cp.random.RandomState(ctx.seed + m * 7 + n * 13 + k)
            a = rs.uniform(-1, 1, (m, k), dtype=cp.float32)
            b = rs.uniform(-1, 1, (k, n), dtype=cp.float32)
            if dtype == "fp16":
                a, b = a.astype(cp.float16), b.astype(cp.float16)
                c = cp.empty((m, n), dtype=cp.float16)
            elif dtype == "bf16":
                a, b = _bf16_from_f32(cp, a), _bf16_from_f32(cp, b)
                c = cp.empty((m, n), dtype=cp.uint16)
            else:
                c = cp.empty((m, n), dtype=cp.float32)
            ctx.scratch["gemm_key"] = key
            ctx.scratch["gemm_ops"] = (a, b, c)
        return tuple(ctx.scratch["gemm_ops"])

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        m, n, k, dtype = int(point["M"]), int(point["N"]), int(point["K"]), point["dtype"]
        a, b, c = self._operands(ctx, m, n, k, dtype)
        row: dict[str, Any] = {
            "device": ctx.device, "gpu_name": ctx.gpu_name, "dtype": dtype,
            "accum_dtype": "fp32", "layout": "nn", "M": m, "N": n, "K": k,
            "flops": 2.0 * m * n * k,
        }
        bind = None
        if point["kernel"] == "cublas":
            fn, bind = self._cublas_fn(ctx, a, b, c, m, n, k, dtype)
            row.update(kernel="cublas", tile_m=0, tile_n=0, tile_k=0, thread_tile_m=0,
                       thread_tile_n=0, threads_per_block=0, split_k=0, stages=0)
        elif point["variant"] in _MMA_VARIANTS:
            fn, fields = self._mma_fn(ctx, a, b, c, m, n, k, dtype, point["variant"])
            row.update(fields)
        else:
            entry, variant = next(kv for kv in OWN_GEMMS if kv[1].name == point["variant"])
            kname, btile, ttile = str(entry.function), variant.tile, variant.thread_tile
            threads = variant.threads_per_block
            kern = ctx.kernels.function(str(entry.source), kname, dict(variant.defines))
            if kname == "sgemm_regblock":
                grid = (math.ceil(n / btile[1]), math.ceil(m / btile[0]))
                block: tuple[int, ...] = (threads,)
            else:
                grid = (math.ceil(n / btile[1]), math.ceil(m / btile[0]))
                block = (btile[1], btile[0])
            args = (a, b, c, np.int32(m), np.int32(n), np.int32(k))

            def fn() -> None:
                kern(grid, block, args)

            row.update(kernel=kname, tile_m=btile[0], tile_n=btile[1],
                       tile_k=btile[2] if kname != "sgemm_naive" else 1,
                       thread_tile_m=ttile[0], thread_tile_n=ttile[1],
                       threads_per_block=threads, split_k=1,
                       stages=1 if kname != "sgemm_naive" else 0)
        # poison with NaN: an element the kernel never writes fails the check
        poison = 0x7FC0 if dtype == "bf16" else np.nan
        c.fill(poison)
        timing = ctx.time_kernel(fn, bind, warmup=2, min_reps=5, max_reps=100, target_s=0.3)
        if timing.replay is not None:  # check what the timed graph computes, not the warm-up
            c.fill(poison)
            ctx.sync()  # the graph's stream does not wait for the default stream
            timing.replay()
            ctx.sync()
        rows = ctx.rng(m + n + k).choice(m, size=min(m, 64), replace=False)
        err = _check_rows(cp, a, b, c, dtype, rows)
        row.update(timing.columns())
        row["tflops"] = row["flops"] / (timing.median * 1e-3) / 1e12
        row.update(ctx.measure_kernel_power(fn, timing))
        row["rel_err"] = err if math.isfinite(err) else None
        row["check_ok"] = bool(math.isfinite(err) and err <= TOLERANCE[dtype])
        return [row]

    def _mma_fn(self, ctx: Context, a: Any, b: Any, c: Any, m: int, n: int, k: int,
                dtype: str, variant_name: str) -> tuple[Any, dict[str, Any]]:
        """The launch of kernels/mma_gemm.cu's ``variant_name`` for ``dtype``, and its row's
        kernel and tile columns. Its shared memory is dynamic and over the 48 KiB default: the
        function's limit is raised to it first."""
        entry, variant = _MMA_VARIANTS[variant_name]
        if not mma_fits(m, n, k):
            raise SimgpuError(f"{entry.source}: N = {n}, K = {k}, expected multiples of 8 (the"
                              " kernel copies 16-byte chunks of rows)")
        if not _has_mma(ctx):
            raise SimgpuError(f"{entry.source} needs compute capability 8.0 or later (mma.sync"
                              f" m16n8k16, cp.async); this GPU is"
                              f" {ctx.props.get('compute_capability')}")
        kern = ctx.kernels.function(str(entry.source), entry.function_for(dtype),
                                    dict(variant.defines))
        bm, bn, bk = variant.tile
        stages = int(variant.params["stages"])
        smem = stages * (bm + bn) * bk * 2  # rows of bk 16-bit words (128 bytes), any dtype
        if dtype == "tf32":
            bk //= 2  # the same 128-byte rows hold half as many fp32 elements
        driver = ctx.cp.cuda.driver
        driver.funcSetAttribute(kern.ptr, getattr(
            driver, "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", _CU_MAX_DYNAMIC_SHARED),
            smem)
        grid = (math.ceil(n / bn), math.ceil(m / bm))
        block = (variant.threads_per_block,)
        args = (a, b, c, np.int32(m), np.int32(n), np.int32(k))

        def fn() -> None:
            kern(grid, block, args, shared_mem=smem)

        fields = {"kernel": entry.name, "tile_m": bm, "tile_n": bn, "tile_k": bk,
                  "thread_tile_m": variant.thread_tile[0],
                  "thread_tile_n": variant.thread_tile[1],
                  "threads_per_block": variant.threads_per_block, "split_k": 1,
                  "stages": stages}
        return fn, fields

    def _cublas_fn(self, ctx: Context, a: Any, b: Any, c: Any, m: int, n: int, k: int,
                   dtype: str) -> tuple[Any, Any]:
        """The call, and how to bind the cuBLAS handle to a stream (None: CuPy's current)."""
        cp = ctx.cp
        cublas = _cublas()
        handle = cp.cuda.device.get_cublas_handle()
        cublas.setPointerMode(handle, 0)  # CUBLAS_POINTER_MODE_HOST
        dt = {"fp32": _CUDA_R_32F, "tf32": _CUDA_R_32F, "fp16": _CUDA_R_16F,
              "bf16": _CUDA_R_16BF}[dtype]
        compute = _COMPUTE_32F_FAST_TF32 if dtype == "tf32" else _COMPUTE_32F
        alpha = np.ones(1, dtype=np.float32)
        beta = np.zeros(1, dtype=np.float32)
        ctx.scratch["gemm_scalars"] = (alpha, beta)  # keep the host scalars alive

        def fn() -> None:
            # row-major C = A B is column-major C^T = B^T A^T
            cublas.gemmEx(handle, _OP_N, _OP_N, n, m, k, alpha.ctypes.data, b.data.ptr, dt, n,
                          a.data.ptr, dt, k, beta.ctypes.data, c.data.ptr, dt, n, compute,
                          _GEMM_DEFAULT)

        def bind(stream: Any) -> None:
            s = stream if stream is not None else cp.cuda.get_current_stream()
            cublas.setStream(handle, s.ptr)

        return fn, bind


class Transpose:
    table = "transpose"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        shapes = [(2048, 2048), (8192, 8192)]
        if ctx.level == "full":
            shapes = [(s, s) for s in (1024, 2048, 4096, 8192, 16384)] + [(4096, 16384),
                                                                          (16384, 4096)]
        return [{"kernel": kn, "rows": r, "cols": c} for kn in ("transpose_naive",
                                                               "transpose_tiled")
                for r, c in shapes]

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        rows, cols = int(point["rows"]), int(point["cols"])
        ctx.free()
        x = cp.random.RandomState(ctx.seed).random_sample((rows, cols), dtype=cp.float32)
        y = cp.empty((cols, rows), dtype=cp.float32)
        kern = ctx.kernels.function("transpose.cu", point["kernel"])
        grid = (math.ceil(cols / 32), math.ceil(rows / 32))

        def fn() -> None:
            kern(grid, (32, 8), (x, y, np.int32(rows), np.int32(cols)))

        y.fill(-1)
        timing = ctx.time(fn)
        ok = bool(cp.array_equal(y, x.T))
        moved = 2 * rows * cols * 4
        return [{"kernel": point["kernel"], "rows": rows, "cols": cols, "bytes_moved": moved,
                 **timing.columns(), "bandwidth_GBps": moved / (timing.median * 1e-3) / 1e9,
                 "check_ok": ok}]


class Reduction:
    table = "reduction"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        if ctx.level == "full":
            return [{"n": 1 << k} for k in range(16, 30, 2)]
        return [{"n": 1 << 20}, {"n": 1 << 24}, {"n": 1 << 28}]

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        n = int(point["n"])
        ctx.free()
        x = cp.random.RandomState(ctx.seed).random_sample(n, dtype=cp.float32)
        out = cp.zeros(1, dtype=cp.float32)
        kern = ctx.kernels.function("reduction.cu", "reduce_sum")
        blocks = min(ctx.sm_count * 8, max(1, math.ceil(n / 4 / 256)))

        def fn() -> None:
            kern((blocks,), (256,), (x, np.uint64(n // 4), out))

        timing = ctx.time(fn)
        out.fill(0)
        fn()
        ref = float(cp.sum(x, dtype=cp.float64))
        err = abs(float(out.get()[0]) - ref) / abs(ref)
        return [{"n": n, "bytes_moved": 4 * n, "blocks": blocks, **timing.columns(),
                 "bandwidth_GBps": 4 * n / (timing.median * 1e-3) / 1e9,
                 "rel_err": err if math.isfinite(err) else None,
                 "check_ok": bool(math.isfinite(err) and err <= 1e-4)}]


class Gemv:
    table = "gemv"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        if ctx.level == "full":
            shapes = [(s, s) for s in (1024, 2048, 4096, 8192, 16384, 32768)]
            shapes += [(1024, 65536), (65536, 1024), (4096, 16384), (16384, 4096)]
        else:
            shapes = [(4096, 4096), (16384, 16384)]
        return [{"M": m, "N": n} for m, n in shapes]

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        m, n = int(point["M"]), int(point["N"])
        ctx.free()
        rs = cp.random.RandomState(ctx.seed)
        a = rs.uniform(-1, 1, (m, n), dtype=cp.float32)
        x = rs.uniform(-1, 1, n, dtype=cp.float32)
        y = cp.empty(m, dtype=cp.float32)
        kern = ctx.kernels.function("gemv.cu", "sgemv_warp")
        grid = (math.ceil(m / 8),)

        def fn() -> None:
            kern(grid, (256,), (a, x, y, np.int32(m), np.int32(n)))

        y.fill(np.nan)
        timing = ctx.time(fn)
        rows = cp.asarray(ctx.rng(m).choice(m, size=min(m, 256), replace=False))
        ref = a[rows].astype(cp.float64) @ x.astype(cp.float64)
        err = float(cp.linalg.norm(y[rows] - ref) / cp.linalg.norm(ref))
        moved = 4 * (m * n + n + m)
        return [{"M": m, "N": n, "bytes_moved": moved, "flops": 2.0 * m * n,
                 **timing.columns(), "bandwidth_GBps": moved / (timing.median * 1e-3) / 1e9,
                 "rel_err": err if math.isfinite(err) else None,
                 "check_ok": bool(math.isfinite(err) and err <= 1e-4)}]
