"""kernels/mma_gemm.cu, simgpu's own tensor-core GEMM: the source compiles for sm_80 and sm_90
(nvcc, and NVRTC as CuPy compiles it, where they are installed), its SASS mainloop against the
trace generator's per-trip instruction counts (where cuobjdump is installed), the trace against
the tile, the catalogue and calibration wiring, and the kernel on a GPU against cupy.matmul
(where CuPy and a GPU are)."""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from simgpu import catalogue, devices
from simgpu.calibrate import bench_compute
from simgpu.calibrate.schema import GEMM
from simgpu.errors import SimgpuError
from simgpu.trace.schema import Instruction
from simgpu.validate.families import families, workload_for_row
from simgpu.workloads import MmaGemm
from simgpu.workloads.gemm import GemmBase
from simgpu.workloads.tensor_gemm import (
    MMA_COPY_INT_OPS,
    MMA_TF32_COPY_INT_OPS,
    MMA_TRIP_INT_OPS,
    TF32_CVT_OPS,
)

SOURCE = Path(__file__).resolve().parent.parent / "kernels" / "mma_gemm.cu"
ENTRY = catalogue.get("mma_gemm")
VARIANTS = [pytest.param(v, id=v.name) for v in ENTRY.variants]
ARCHS = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc")
CUOBJDUMP = shutil.which("cuobjdump")
SYNC = ("BAR.SYNC", "DEPBAR.LE", "LDGDEPBAR")


def _nvcc_release() -> str:
    if NVCC is None:
        return ""
    out = subprocess.run([NVCC, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else ""


NVCC_RELEASE = _nvcc_release()


def _workload(variant, M=1024, N=1024, K=1024, dtype="fp16") -> MmaGemm:
    return MmaGemm(M, N, K, dtype=dtype, **variant.params)


def _defines(variant) -> list[str]:
    return [f"-D{k}={v}" for k, v in variant.defines.items()]


def _nvcc(variant, arch: str, out: Path) -> str:
    proc = subprocess.run(
        [str(NVCC), f"-arch={arch}", "-cubin", "-std=c++17", "-Xptxas", "-v", *_defines(variant),
         "-o", str(out), str(SOURCE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


# --- the source compiles --------------------------------------------------------------------


@pytest.mark.skipif(NVCC is None, reason="needs nvcc on PATH")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_compiles_with_nvcc_without_spills_at_the_modelled_registers(variant, arch, tmp_path):
    log = _nvcc(variant, arch, tmp_path / "k.cubin")
    parts = log.split("Compiling entry function")
    for dtype in ENTRY.dtypes:
        fn = ENTRY.function_for(dtype)
        (block,) = [p for p in parts if p.lstrip().startswith(f"'{fn}'")]
        used = re.search(r"Used (\d+) registers", block)
        assert used, log
        # the launch's registers (both views' occupancy follows them) are the compiler's, as
        # nvcc 13.0 gives them (the catalogue variant's source); another release may allocate
        # otherwise. The occupancy rule sees them in allocation units of 8 a thread: the same
        # there on every architecture, the count itself recorded for sm_80.
        if NVCC_RELEASE == "13.0":
            regs, recorded = int(used.group(1)), variant.regs_per_thread[dtype]
            assert -(-regs // 8) == -(-recorded // 8), (fn, arch, log)
            if arch == "sm_80":
                assert regs == recorded, (fn, arch, log)
        assert "0 bytes spill stores" in block.split("Used")[0], log


def _nvrtc() -> ctypes.CDLL | None:
    names = [ctypes.util.find_library("nvrtc")]
    try:  # the NVRTC wheel CuPy uses (nvidia-cuda-nvrtc)
        import nvidia  # type: ignore[import-not-found]

        for root in getattr(nvidia, "__path__", []):
            names += [str(p) for p in sorted(Path(root).glob("cu*/lib/libnvrtc.so*"))
                      if "alt" not in p.name and "builtins" not in p.name]
    except ImportError:
        pass
    for name in names:
        if name:
            try:
                # its builtins library, beside it, is opened by name: load it first
                for b in sorted(Path(name).parent.glob("libnvrtc-builtins.so.*")):
                    if "alt" not in b.name:
                        ctypes.CDLL(str(b), mode=ctypes.RTLD_GLOBAL)
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


NVRTC = _nvrtc()


@pytest.mark.skipif(NVRTC is None, reason="needs libnvrtc (the runtime compiler CuPy uses)")
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_compiles_with_nvrtc_as_cupy_does(variant, arch):
    """NVRTC, with the options simgpu.calibrate.gpu.KernelCache gives RawModule (no host
    headers, no include paths)."""
    lib = NVRTC
    assert lib is not None
    prog = ctypes.c_void_p()
    code = SOURCE.read_bytes()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), code, b"mma_gemm.cu", 0, None, None) == 0
    opts = [b"-std=c++17", f"--gpu-architecture={arch}".encode(),
            *(d.encode() for d in _defines(variant))]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    status = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    ptx_size = ctypes.c_size_t()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(ptx_size))
    ptx = ctypes.create_string_buffer(ptx_size.value)
    lib.nvrtcGetPTX(prog, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    assert status == 0, log.value.decode()
    text = ptx.value.decode()
    for fn in ("mma_gemm_fp16", "mma_gemm_bf16", "mma_gemm_tf32"):
        assert f".entry {fn}(" in text
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in text
    assert "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in text
    assert "cvt.rna.tf32.f32" in text
    assert "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in text
    assert "cp.async.cg.shared.global" in text


# --- the SASS mainloop against the trace -------------------------------------------------------


def _sass_loop(variant, arch: str, fn: str, tmp_path: Path) -> collections.Counter[str]:
    """Opcode counts of the mainloop (the body of the kernel's only backward branch), without
    the never-issued ``@!PT`` padding."""
    cubin = tmp_path / f"{variant.name}_{arch}.cubin"
    _nvcc(variant, arch, cubin)
    proc = subprocess.run([str(CUOBJDUMP), "-sass", "-fun", fn, str(cubin)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = []
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)(.*)", line)
        if m and (m.group(2) or "").strip() != "@!PT":
            lines.append((int(m.group(1), 16), m.group(3), m.group(4)))
    back = [(a, int(t.group(1), 16)) for a, op, rest in lines if op == "BRA"
            for t in [re.match(r"\s*(0x[0-9a-f]+)", rest)] if t and int(t.group(1), 16) < a]
    assert len(back) == 1, back  # the K loop (the rest is unrolled)
    end, start = back[0]
    return collections.Counter(op for a, op, _ in lines if start <= a <= end)


def _classes(counts: collections.Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = collections.defaultdict(int)
    for op, n in counts.items():
        base = op.split(".")[0]
        if base in ("HMMA", "LDGSTS", "BRA"):
            out[base] += n
        elif op.startswith("LDSM.16.MT88"):
            out["LDSM.T"] += n
        elif base == "LDSM":
            out["LDSM"] += n
        elif base == "LDS":  # tf32's B fragments, an element a lane
            out["LDS"] += n
        elif op == TF32_CVT_OPS[0]:  # cvt.rna.tf32.f32's first instruction
            out["CVT"] += n
        elif any(op.startswith(s) for s in SYNC):
            out[next(s for s in SYNC if op.startswith(s))] += n
        else:
            out["other"] += n
    return dict(out)


def _trace_trip(w: MmaGemm, warp: int = 0, block: int = 0) -> dict[str, int]:
    """The instructions one steady-state trip adds to a warp: the difference of two trip
    counts that both keep copying."""
    s = w.stages
    a = collections.Counter(i.opcode for i in w.with_trips(2 * s).make_block(block)[warp])
    b = collections.Counter(i.opcode for i in w.with_trips(2 * s + 1).make_block(block)[warp])
    return _classes({op: b[op] - a[op] for op in b})


@pytest.mark.skipif(NVCC is None or CUOBJDUMP is None, reason="needs nvcc and cuobjdump")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ["fp16", "bf16", "tf32"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_sass_mainloop_matches_the_trace_per_trip(variant, dtype, arch, tmp_path):
    counts = _sass_loop(variant, arch, ENTRY.function_for(dtype), tmp_path)
    sass = _classes(counts)
    w = _workload(variant, dtype=dtype)
    trace = _trace_trip(w)
    for key in ("HMMA", "LDSM", "LDSM.T", "LDS", "CVT", "LDGSTS", "BRA", *SYNC):
        assert trace.get(key, 0) == sass.get(key, 0), (key, trace, sass)
    # the tensor-core instruction is the one the device files time
    mma = next(op for op in counts if op.startswith("HMMA"))
    assert (dtype == "tf32") == (mma == "HMMA.1688.F32.TF32"), mma
    # the address arithmetic: the trace's per-copy and per-trip counts, from this SASS
    assert trace["other"] == pytest.approx(sass["other"], rel=0.15), (trace, sass)


# --- the trace against the tile ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["fp16", "bf16", "tf32"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_trace_per_trip_counts_follow_the_tile(variant, dtype):
    w = _workload(variant, dtype=dtype)
    wm, wn = w.tile_m // w.warps_m, w.tile_n // w.warps_n
    tf32 = dtype == "tf32"
    k_inst = 8 if tf32 else 16  # m16n8k8 / m16n8k16
    ks = w.tile_k // k_inst
    assert w.tile_k * (4 if tf32 else 2) == 128  # 128-byte rows whatever the type
    chunks = (w.tile_m + w.tile_n) * w.tile_k * (4 if tf32 else 2) // 16  # 16-byte chunks
    trip = _trace_trip(w, warp=w.warps_m * w.warps_n - 1)
    assert trip["HMMA"] == ks * (wm // 16) * (wn // 8)
    assert trip["LDSM"] == ks * (wm // 16)  # ldmatrix.x4: 16 rows x 128 bits of k of A
    assert trip.get("LDSM.T", 0) == (0 if tf32 else ks * (wn // 16))  # 16 k x 16 columns
    assert trip.get("LDS", 0) == (ks * (wn // 8) * 2 if tf32 else 0)  # rows t, t + 4
    # tf32: every operand register (4 of A per m16, 2 of B per n8) rounded once per k step
    cvt = ks * (4 * (wm // 16) + 2 * (wn // 8)) if tf32 else 0
    assert trip.get("CVT", 0) == cvt
    assert trip["LDGSTS"] == chunks // w.threads
    assert {trip[s] for s in SYNC} == {1}
    per_copy = MMA_TF32_COPY_INT_OPS if tf32 else MMA_COPY_INT_OPS
    assert trip["other"] == (chunks // w.threads) * per_copy + MMA_TRIP_INT_OPS + 3 + cvt


def _k_steps(insts: list[Instruction]) -> list[list[Instruction]]:
    """A warp's instructions cut after each run of mma (one run per k step)."""
    out: list[list[Instruction]] = [[]]
    for prev, inst in zip([None, *insts], insts, strict=False):
        if prev is not None and prev.opcode.startswith("HMMA") and not inst.opcode.startswith(
                "HMMA"):
            out.append([])
        out[-1].append(inst)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_copies_spread_over_the_k_steps_as_the_kernel_issues_them(variant):
    """COPIES_PER_STEP = ceil(copies / (k steps - 1)) at each k step but the last, whose start
    commits the group, waits for the next tile and syncs the block."""
    w = _workload(variant)
    steps = _k_steps(w.with_trips(2 * w.stages).make_block(0)[0])
    ks, copies = w.tile_k // 16, w.copies
    per = -(-copies // (ks - 1))
    expect = [min(per, copies - i * per) for i in range(ks - 1)] + [0]
    trip = steps[ks:2 * ks]  # the second trip (the first k step follows the prologue)
    got = [sum(i.opcode.startswith("LDGSTS") for i in s) for s in trip]
    assert got == expect
    last = [i.opcode for i in trip[-1]]
    assert last.index("LDGDEPBAR") < last.index(f"DEPBAR.LE.SB0.{w.stages - 2}") < (
        last.index("BAR.SYNC"))


def test_edge_blocks_copy_and_store_only_what_is_in_the_matrices():
    """M, N, K not multiples of the tile: the last block's copies move exactly the in-bounds
    rows of A and B (chunks outside are zero-filled, no traffic), its stores exactly its part
    of C."""
    M, N, K = 1000, 1000, 1000
    w = MmaGemm(M, N, K, dtype="bf16")
    launch = w.launch()
    last = launch.num_blocks - 1
    bx, by, _ = launch.block_coords(last)
    rows = M - by * w.tile_m
    cols = N - bx * w.tile_n
    moved = stored = 0
    for warp in w.make_block(last):
        for i in warp:
            lanes = bin(i.mask).count("1")
            if i.opcode.startswith("LDGSTS"):
                moved += 16 * lanes
            elif i.opcode.startswith("STG"):
                stored += i.width * lanes
    assert moved == 2 * (rows * K + K * cols)
    assert stored == 2 * rows * cols


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"M": 512, "N": 1001, "K": 512}, ["N = 1001", "multiple of 8"]),
    ({"M": 512, "N": 512, "K": 100}, ["K = 100", "multiple of 8"]),
    ({"M": 512, "N": 512, "K": 512, "dtype": "fp8"}, ["'fp8'", "fp16, bf16 or tf32"]),
    ({"M": 512, "N": 512, "K": 512, "tile_n": 160, "warps_n": 2},
     ["128 x 160", "tile_n a multiple of 64"]),
    ({"M": 512, "N": 512, "K": 512, "split_k": 2}, ["split_k=2"]),
])
def test_shapes_the_kernel_cannot_run_are_refused(kwargs, words):
    with pytest.raises(SimgpuError) as err:
        MmaGemm(**kwargs)
    for word in words:
        assert word in str(err.value)


# --- catalogue, calibration and views -----------------------------------------------------------


def test_catalogue_entry_names_its_source_functions_and_variants():
    assert (SOURCE.parent / str(ENTRY.source)).is_file()
    text = SOURCE.read_text()
    for dtype in ENTRY.dtypes:
        assert f"{ENTRY.function_for(dtype)}(" in text
    with pytest.raises(SimgpuError, match="fp16, bf16, tf32, not 'fp32'"):
        ENTRY.function_for("fp32")
    assert "mma_gemm" in GEMM.column("kernel").choices  # its rows are valid gemm rows
    for v in ENTRY.variants:
        w = GemmBase.of_kernel("mma_gemm", 2048, 2048, 2048, dtype="bf16", tile=v.tile[0])
        assert isinstance(w, MmaGemm) and w.dtype == "bf16"
        assert (w.tile_m, w.tile_n, w.tile_k, w.threads) == (*v.tile, v.threads_per_block)
        assert w.calibration_point() == {"kernel": "own", "variant": v.name, "dtype": "bf16",
                                         "M": 2048, "N": 2048, "K": 2048}
        assert v.max_dim >= 8192


def _ctx(cc: str) -> SimpleNamespace:
    return SimpleNamespace(level="quick", seed=1, props={"compute_capability": cc})


def test_calibration_sweep_measures_it_beside_cublas_on_sm80_and_later():
    pts = bench_compute.Gemm().points(_ctx("8.0"))  # type: ignore[arg-type]
    shapes = {(p["M"], p["N"], p["K"]) for p in pts}
    for dtype in ENTRY.dtypes:
        for m, n, k in shapes:
            got = [p for p in pts if (p["M"], p["N"], p["K"]) == (m, n, k)
                   and p["dtype"] == dtype]
            names = [p["variant"] for p in got]
            # cuBLAS first, then each variant of ours, on the same operands
            assert names == ["cublas", *(v.name for v in ENTRY.variants)], names
    older = bench_compute.Gemm().points(_ctx("7.0"))  # type: ignore[arg-type]
    assert not [p for p in older if p["variant"].startswith("mma")]
    assert len(pts) - len(older) == len(shapes) * len(ENTRY.dtypes) * len(ENTRY.variants)
    # tf32's follow cuBLAS's tf32 call and our fp32 kernels, on fp32's operands
    for m, n, k in shapes:
        group = [(p["kernel"], p["dtype"]) for p in pts if (p["M"], p["N"], p["K"]) == (m, n, k)]
        first = group.index(("own", "tf32"))
        assert ("cublas", "tf32") in group[:first]
        assert all(d in ("fp32", "tf32") for _, d in group[:first])


def test_a_measured_row_is_the_same_kernel_in_every_view():
    """validate's gemm family turns a measured mma_gemm row into the MmaGemm of its tile; the
    analytical view answers with that tile, no library call floor; the simulated view replays
    that kernel's launch."""
    spec = devices.get("a100-sxm-80gb")
    fam = families()["gemm_time"]
    row = {"kernel": "mma_gemm", "dtype": "fp16", "M": 3000, "N": 3000, "K": 3000,
           "tile_m": 64, "tile_n": 64, "tile_k": 64, "check_ok": True}
    w = workload_for_row(fam, row)
    assert isinstance(w, MmaGemm) and (w.tile_m, w.tile_n, w.dtype) == (64, 64, "fp16")
    est = w.estimate(spec).iloc[0]
    assert (est["tile_m"], est["tile_n"], est["tile_k"], est["stages"]) == (64, 64, 64, 4)
    assert est["bound"] != "host"
    assert w.launch().name == "mma_gemm_fp16"
    assert w.launch().shared_bytes == 4 * (64 + 64) * 64 * 2


def test_small_sampled_replay_runs_on_a100():
    spec = devices.get("a100-sxm-80gb")
    w = MmaGemm(256, 256, 512, dtype="fp16")
    res = w.simulate(spec, sample=False)
    assert res.flops == pytest.approx(2 * 256 * 256 * 512)
    # every block reads its A and B strips once (4 blocks of 128 x 128)
    assert res.bytes["l2"]["read"] == pytest.approx(4 * (128 + 128) * 512 * 2, rel=0.02)


# --- on a GPU ---------------------------------------------------------------------------------


def _cupy_with_sm80():
    try:
        import cupy as cp
    except ImportError:
        return None
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
        major = cp.cuda.Device(0).compute_capability
    except Exception:
        return None
    return cp if int(str(major)[:-1] or 0) >= 8 else None


@pytest.mark.skipif(_cupy_with_sm80() is None, reason="needs CuPy and an sm_80+ GPU")
@pytest.mark.parametrize("dtype", ["fp16", "bf16", "tf32"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(1000, 1000, 1000), (128, 256, 64), (300, 520, 1032)])
def test_kernel_matches_cupy_matmul_on_the_gpu(variant, dtype, shape):
    from simgpu.calibrate.gpu import KernelCache

    cp = _cupy_with_sm80()
    m, n, k = shape
    ctx = SimpleNamespace(cp=cp, kernels=KernelCache(), props={
        "compute_capability": "{}.{}".format(*divmod(int(cp.cuda.Device(0).compute_capability),
                                                     10))})
    rs = cp.random.RandomState(7)
    a = rs.uniform(-1, 1, (m, k), dtype=cp.float32)
    b = rs.uniform(-1, 1, (k, n), dtype=cp.float32)
    if dtype == "fp16":
        a16, b16 = a.astype(cp.float16), b.astype(cp.float16)
        c = cp.full((m, n), np.nan, dtype=cp.float16)
    elif dtype == "tf32":  # fp32 operands and C
        a16, b16 = a, b
        c = cp.full((m, n), np.nan, dtype=cp.float32)
    else:
        a16, b16 = bench_compute._bf16_from_f32(cp, a), bench_compute._bf16_from_f32(cp, b)
        c = cp.full((m, n), 0x7FC0, dtype=cp.uint16)
    fn, fields = bench_compute.Gemm()._mma_fn(ctx, a16, b16, c, m, n, k, dtype,  # type: ignore[arg-type]
                                               variant.name)
    fn()
    cp.cuda.Device().synchronize()
    got = bench_compute._f64(cp, c, dtype)
    ref = cp.matmul(bench_compute._f64(cp, a16, dtype), bench_compute._f64(cp, b16, dtype))
    err = float(cp.linalg.norm(got - ref) / cp.linalg.norm(ref))
    assert err <= bench_compute.TOLERANCE[dtype], err
    assert fields["kernel"] == "mma_gemm"


def test_harness_launches_the_variant_with_its_shared_memory():
    """Without a GPU: the launch Gemm._mma_fn builds (the compiled function, its defines, the
    raised dynamic shared-memory limit, grid, block and shared_mem), and its refusals."""
    calls: dict[str, object] = {}

    class Kernel:
        ptr = 1234

        def __call__(self, grid, block, args, shared_mem=0):
            calls["launch"] = (grid, block, len(args), shared_mem)

    class Kernels:
        def function(self, source, name, defines):
            calls["function"] = (source, name, defines)
            return Kernel()

    def set_attribute(ptr, attribute, value):
        calls["attribute"] = (ptr, attribute, value)

    cp = SimpleNamespace(cuda=SimpleNamespace(driver=SimpleNamespace(
        funcSetAttribute=set_attribute)))
    ctx = SimpleNamespace(cp=cp, kernels=Kernels(), props={"compute_capability": "8.6"})
    v = ENTRY.variant_named("mma128x128")
    fn, fields = bench_compute.Gemm()._mma_fn(ctx, None, None, None, 1000, 3000, 2000,  # type: ignore[arg-type]
                                               "bf16", v.name)
    fn()
    smem = 3 * (128 + 128) * 64 * 2
    assert calls["function"] == ("mma_gemm.cu", "mma_gemm_bf16", dict(v.defines))
    assert calls["attribute"] == (1234, 8, smem)  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE
    assert calls["launch"] == ((24, 8), (256,), 6, smem)
    assert fields["kernel"] == "mma_gemm" and fields["stages"] == 3
    assert {k: fields[k] for k in v.analytical_tiles()} == v.analytical_tiles()
    # tf32: its own function, the same shared memory (128-byte rows of 32 fp32 elements)
    fn, fields = bench_compute.Gemm()._mma_fn(ctx, None, None, None, 1000, 3000, 2000,  # type: ignore[arg-type]
                                               "tf32", v.name)
    fn()
    assert calls["function"] == ("mma_gemm.cu", "mma_gemm_tf32", dict(v.defines))
    assert calls["launch"] == ((24, 8), (256,), 6, smem)
    assert fields["tile_k"] == 32
    with pytest.raises(SimgpuError, match="N = 1001, K = 2000, expected multiples of 8"):
        bench_compute.Gemm()._mma_fn(ctx, None, None, None, 1000, 1001, 2000,  # type: ignore[arg-type]
                                     "bf16", v.name)
    ctx.props["compute_capability"] = "7.5"
    with pytest.raises(SimgpuError, match="compute capability 8.0 or later.*7.5"):
        bench_compute.Gemm()._mma_fn(ctx, None, None, None, 1000, 1000, 2000,  # type: ignore[arg-type]
                                     "fp16", v.name)
