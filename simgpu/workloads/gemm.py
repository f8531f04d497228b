"""SGEMM workloads matching ``kernels/sgemm.cu``: naive, shared-memory tiled, register-blocked.

C = A B with A (M x K), B (K x N), C (M x N), row-major fp32. The traces follow the SASS nvcc
emits for these kernels (checked against the NVBit trace of the same textbook tiled kernel in
``shared/data/accelsim/traces/matrixmul32``): the tiled inner loop is fully unrolled, the row of
``As`` is read four words at a time (LDS.128, a broadcast within each row) and ``Bs`` one word per
``k`` (LDS.32), each feeding one FFMA into the single accumulator.

Large GEMMs are simulated by sampling twice: waves (see :mod:`simgpu.sim.replay`) and trips of
the K loop. Every trip of the loop does the same work, so the kernel time is affine in the trip
count; :meth:`GemmBase.simulate` replays the first wave with two short trip counts and
extrapolates to the real one, reporting the spread between the two slopes it can fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simgpu import analytical, catalogue
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.sim.gpuslice import default_slice
from simgpu.sim.replay import SimResult, simulate_trace
from simgpu.trace.schema import Instruction, KernelLaunch
from simgpu.workloads.base import (
    FULL,
    ArrayLayout,
    Asm,
    Workload,
    check_positive,
    lanes_mask,
    simulate_trips,
)

if TYPE_CHECKING:
    import pandas as pd

    from simgpu.devices.spec import DeviceSpec

__all__ = ["TiledGemm", "NaiveGemm", "RegBlockGemm", "GemmBase"]

F4 = 4  # bytes per float


@dataclass
class GemmBase(Workload):
    """Shared by the GEMM kernels: shape, arrays, FLOPs, bytes, trip sampling."""

    M: int
    N: int
    K: int

    def __post_init__(self) -> None:
        check_positive(M=self.M, N=self.N, K=self.K)
        lay = ArrayLayout()
        self._A = lay.alloc("A", self.M * self.K * F4)
        self._B = lay.alloc("B", self.K * self.N * F4)
        self._C = lay.alloc("C", self.M * self.N * F4)
        self._asm = Asm()
        self._trips_cut: int | None = None

    @property
    def flops(self) -> float:
        return 2.0 * self.M * self.N * self.K

    @property
    def compulsory_bytes(self) -> float:
        return float(F4 * (self.M * self.K + self.K * self.N + self.M * self.N))

    # -- K-loop trips ---------------------------------------------------------------------------
    @property
    def k_step(self) -> int:
        """K covered by one trip of the main loop."""
        raise NotImplementedError

    @property
    def trips(self) -> int:
        return self._trips_cut or -(-self.K // self.k_step)

    @property
    def dtype(self) -> str:
        """Input data type (the kernels of kernels/sgemm.cu are fp32)."""
        return "fp32"

    def tiles(self) -> dict[str, int]:
        """The tile arguments of :func:`simgpu.analytical.gemm` (tile_m ... threads_per_block)
        of this kernel; empty where the library chooses."""
        raise NotImplementedError

    def estimate(self, spec: DeviceSpec) -> pd.DataFrame:
        return analytical.gemm(spec, self.M, self.N, self.K, self.dtype, kernel=self.kernel,
                               **self.tiles())

    def features(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "dtype": self.dtype, "M": self.M, "N": self.N,
                "K": self.K, **self.tiles()}

    def row_key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"kernel": self.kernel, "dtype": self.dtype, "M": self.M,
                               "N": self.N, "K": self.K}
        tiles = self.tiles()
        if tiles:
            key["tile_m"] = tiles["tile_m"]
        return key

    def calibration_point(self) -> dict[str, Any]:
        tiles = self.tiles()
        for v in self.entry().variants:
            if v.analytical_tiles() == tiles:
                return {"kernel": "own", "variant": v.name, "dtype": self.dtype, "M": self.M,
                        "N": self.N, "K": self.K}
        raise ViewUnavailable(
            f"{self.kernel} with tiles {tiles} is not one of the variants kernels/"
            f"{self.entry().source} compiles ({[v.name for v in self.entry().variants]})"
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> GemmBase:
        """The GEMM a ``gemm`` table row measured, as the workload class of its kernel."""
        return cls.of_kernel(str(row["kernel"]), int(row["M"]), int(row["N"]), int(row["K"]),
                             dtype=str(row.get("dtype", "fp32")), tile=int(row.get("tile_m", 0)))

    @staticmethod
    def of_kernel(kernel: str, M: int, N: int, K: int, *, dtype: str = "fp32",
                  tile: int = 0) -> GemmBase:
        """The workload of GEMM ``kernel`` (a catalogue name): for our own kernels the variant
        whose block tile M is ``tile`` (0: the default one), for cuBLAS the library's."""
        entry = catalogue.get(kernel)
        if entry.kind != "gemm" or entry.workload is None:
            raise ViewUnavailable(f"kernel {kernel!r} has no workload class (a dataset's kernel,"
                                  " known to the analytical model and the predictor only)")
        entry.check_dtype(dtype)
        # the workload classes by name: every GemmBase subclass defined (simgpu.workloads
        # imports them all; LibraryGemm lives in simgpu.workloads.tensor_gemm, which builds on
        # this module)
        classes = {c.__name__: c for c in _subclasses(GemmBase)}
        if kernel == "cublas":
            if tile:
                raise SimgpuError("a tile applies to the kernels/sgemm.cu kernels, not cublas")
            return classes[entry.workload](M, N, K, dtype=dtype)  # type: ignore[call-arg]
        cls = classes[entry.workload]
        params: dict[str, Any] = dict(entry.variant(tile).params)
        if entry.dtypes != ("fp32",):  # a kernel of several types (kernels/mma_gemm.cu)
            params["dtype"] = dtype
        return cls(M, N, K, **params)

    def inputs(self) -> list[tuple[int, int]]:
        return [(self._A, F4 * self.M * self.K), (self._B, F4 * self.K * self.N)]

    def simulate(
        self,
        spec: DeviceSpec,
        *,
        sample: bool = True,
        trip_samples: tuple[int, int] = (2, 4),
        warm_l2: bool = False,
        **kwargs: Any,
    ) -> SimResult:
        """Replay on ``spec``. With ``sample`` and more trips than ``trip_samples[1]``, the
        first wave is replayed at two trip counts and the time extrapolated linearly.

        ``warm_l2``: when A and B fit in the L2 together, start with them in it (the state later
        waves see, since every element is read by many blocks), instead of a cold L2; used to
        take the first wave's cold misses out of an extrapolation over many waves. Where they
        fit in one L2 partition, they start in every partition: the measured calls repeat
        back to back, and blocks on SMs of every partition read every line of A and B, so
        each partition holds a copy after the first call (a far hit copies the line into the
        reader's near partition).

        ``sm_slice``: unless a slice is asked for (``sm_slice=k``), the whole GPU, or, for a
        sampled replay that starts with A and B in the L2 of a kernel that stages them
        through shared memory with at most :data:`SLICE_L2_BYTES_PER_FLOP` of L2 traffic, the
        slice sampling picks (:func:`default_slice`). A slice of a
        GEMM's wave reads all of the wave's rows of A for a quarter of its columns, so the
        traffic every block of a row shares is read again by each slice: the sampled cuBLAS
        fp16 5120^3 (cold, DRAM-bound) came out 2.1x the whole GPU's time on a quarter of it.
        From the L2 that traffic is hits; the naive kernel, which reads every operand from
        global memory on every k, still ran 12-15% fast on a quarter of the GPU, and the
        tiled kernel's 8 x 8 tiles 6-21% (docs/sm-model.md).
        """

        explicit = kwargs.get("sm_slice") is not None
        factory = kwargs.get("system_factory")
        if warm_l2:
            kwargs = self.warm_l2_kwargs(spec, kwargs, every_partition=True)
        if not explicit:
            warm = kwargs.get("system_factory") is not factory  # A and B start in the L2
            k = 1
            launch = self.launch()
            if sample and warm and launch.shared_bytes > 0:
                row = self.estimate(spec).iloc[0]
                if row["l2_bytes"] <= SLICE_L2_BYTES_PER_FLOP * row["flops"]:
                    k = default_slice(spec, launch.num_blocks)
            kwargs = {**kwargs, "sm_slice": k}
        if not sample or self.trips <= trip_samples[1] * 2:
            return simulate_trace(self.trace(), spec, sample=sample, **kwargs)
        return simulate_trips(self, spec, self.trips, self.with_trips, trip_samples, **kwargs)


#: The most L2 traffic per FLOP (the analytical model's ``l2_bytes`` over ``flops``) of a GEMM
#: that :meth:`GemmBase.simulate` samples on a slice of the GPU when A and B start in the L2.
#: assumption, from ``bench_sampling.py --versus-whole`` on h100-sxm (run 20261207T163806Z,
#: docs/sm-model.md): the shared-memory kernels that read 0.25 B/FLOP of A and B or less (tiled
#: 16 and 32, register-blocked, cuBLAS) came out within 1.5% (median) of the whole GPU's sampled
#: time on a quarter of it, at most 6.4% but -12.7% for 128 x 128 tiles at 2048^3 (each within
#: its stated spread); the tiled kernel's 8 x 8 tiles (0.5 B/FLOP) 6-21% fast. The bound lies
#: between the two, with room for C's bytes (2 / K B/FLOP more).
SLICE_L2_BYTES_PER_FLOP = 0.4


def _subclasses(cls: type[GemmBase]) -> list[type[GemmBase]]:
    """Every subclass of ``cls`` defined so far, depth first."""
    out: list[type[GemmBase]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _lane_coords(warp: int, bx: int, lanes: int = 32) -> list[tuple[int, int]]:
    """(tx, ty) of each lane of ``warp`` in a block ``bx`` threads wide."""
    return [((32 * warp + lane) % bx, (32 * warp + lane) // bx) for lane in range(lanes)]


#: Accumulator registers of the tiled kernel's FFMA chain, indexed by k mod 4: R29, R30, R31,
#: R28 are in banks 1, 2, 3, 0 (mod 4), one past the A fragment register of the same k.
_TILED_ACC_REGS = (29, 30, 31, 28)
#: Where the accumulator is at the start and end of every trip.
TILED_ACC = _TILED_ACC_REGS[0]
#: How far the tiled inner loop's ``Bs`` loads run ahead of their FFMAs: Bs[k + 4] is loaded
#: right after FFMA k. nvcc (the sm_61 build of this kernel traced in
#: shared/data/accelsim/traces/matrixmul32, warp 0) loads Bs[k + 5] there in the first FFMAs of
#: a trip and Bs[k + 3] or Bs[k + 4] later: a median of 7 instructions from a load to its FFMA,
#: 8 with this rule.
TILED_B_AHEAD = 4


def _tiled_b_reg(k: int) -> int:
    """Register of the ``Bs[k][tx]`` operand: bank (k + 2) mod 4, in a ring of eight (R32-R39)
    so that none is rewritten while a load ahead of it is in flight."""
    return 32 + (k + 2) % 4 + 4 * ((k // 4) % 2)


@dataclass
class TiledGemm(GemmBase):
    """``sgemm_tiled``: TILE x TILE threads, TILE x TILE tiles of A and B in shared memory."""

    tile: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tile not in (8, 16, 32):
            raise SimgpuError(f"tile = {self.tile}: expected 8, 16 or 32 (kernels/sgemm.cu)")
        self._inner: dict[int, list[Instruction]] = {}

    @property
    def name(self) -> str:
        return "gemm_tiled"

    @property
    def kernel(self) -> str:
        return "sgemm_tiled"

    @property
    def k_step(self) -> int:
        return self.tile

    def tiles(self) -> dict[str, int]:
        t = self.tile
        return {"tile_m": t, "tile_n": t, "tile_k": t, "thread_tile_m": 1, "thread_tile_n": 1,
                "threads_per_block": t * t}

    def launch(self) -> KernelLaunch:
        t = self.tile
        return KernelLaunch(
            name=f"sgemm_tiled<TILE={t}>",
            grid=(-(-self.N // t), -(-self.M // t), 1),
            block=(t, t, 1),
            # assumption: nvcc -O3 for sm_80+ uses about 32 registers for this kernel (the
            # sm_61 build traced in shared/data/accelsim/traces/matrixmul32 reports 30).
            regs_per_thread=32,
            shared_bytes=2 * t * t * F4,
        )

    def _loop_body(self, w: int) -> list[Instruction]:
        """STS, BAR, unrolled LDS/FFMA, BAR and loop overhead of one trip (block-independent)."""
        if w in self._inner:
            return self._inner[w]
        a, t = self._asm, self.tile
        coords = _lane_coords(w, t)
        bs_base = t * t * F4
        sts_a = a.mem(
            "STS", "shared", 4, [(ty * t + tx) * F4 for tx, ty in coords], src=(9, 14), cache=True
        )
        sts_b = a.mem(
            "STS",
            "shared",
            4,
            [bs_base + (ty * t + tx) * F4 for tx, ty in coords],
            src=(9, 15),
            cache=True,
        )
        body = [sts_a, sts_b, a.op("BAR.SYNC")]

        def lds_a(g: int) -> Instruction:
            # As row fragment of k = 4g..4g+3: R16-19 / R20-23 alternate
            areg = 16 + 4 * (g % 2)
            return a.mem(
                "LDS.U.128",
                "shared",
                16,
                [(ty * t + 4 * g) * F4 for tx, ty in coords],
                dst=range(areg, areg + 4),
                src=(5,),
                cache=True,
            )

        def lds_b(k: int) -> Instruction:
            return a.mem(
                "LDS.U.32",
                "shared",
                4,
                [bs_base + (k * t + tx) * F4 for tx, _ in coords],
                dst=(_tiled_b_reg(k),),
                src=(6,),
                cache=True,
            )

        # The shared loads run ahead of the FFMAs that use them, as nvcc schedules this loop
        # (the sm_61 build of this kernel, shared/data/accelsim/traces/matrixmul32, warp 0):
        # Bs[0], the first As fragment and Bs[1..TILED_B_AHEAD] first; then after the first
        # FFMA of a fragment's four the next fragment, and after FFMA k (k >= 1) the load of
        # Bs[k + TILED_B_AHEAD].
        body.append(lds_b(0))
        body.append(lds_a(0))
        body.extend(lds_b(k) for k in range(1, min(t, TILED_B_AHEAD + 1)))
        for k in range(t):
            g, j = divmod(k, 4)
            # Registers as a bank-aware allocator places them (nvcc: in the sm_61 build of
            # this kernel no FFMA has two sources in one bank mod 4 or all three in one bank
            # mod 2): A fragment in bank j, accumulator in bank j+1, B in bank j+2 (mod 4).
            # The accumulator rotates over R28-R31 (renamed each FFMA, as nvcc does); after a
            # trip (a multiple of 4 FFMAs) it is back in TILED_ACC.
            areg = 16 + 4 * (g % 2)
            acc_in = _TILED_ACC_REGS[j]
            acc_out = _TILED_ACC_REGS[(j + 1) % 4]
            body.append(a.op("FFMA", dst=(acc_out,), src=(areg + j, _tiled_b_reg(k), acc_in)))
            if j == 0 and 4 * (g + 1) < t:
                body.append(lds_a(g + 1))
            if k >= 1 and k + TILED_B_AHEAD < t:
                body.append(lds_b(k + TILED_B_AHEAD))
        body += [
            a.op("BAR.SYNC"),
            a.op("IADD3", dst=(10,), src=(10,)),
            a.op("IADD3", dst=(12,), src=(12,)),
            a.op("IADD3", dst=(7,), src=(7,)),
            a.op("ISETP.GE.AND", dst=(), src=(7,)),
            a.op("BRA"),
        ]
        self._inner[w] = body
        return body

    def make_block(self, index: int) -> list[list[Instruction]]:
        a, t = self._asm, self.tile
        M, N, K = self.M, self.N, self.K
        launch = self.launch()
        bx, by, _ = launch.block_coords(index)
        warps: list[list[Instruction]] = []
        nwarps = launch.warps_per_block()
        prologue = [
            a.op("S2R", dst=(0,)),
            a.op("S2R", dst=(1,)),
            a.op("S2R", dst=(2,)),
            a.op("S2R", dst=(3,)),
            a.op("IMAD", dst=(4,), src=(3, 1)),
            a.op("IMAD", dst=(5,), src=(2, 0)),
            a.op("MOV", dst=(TILED_ACC,)),
            a.op("IMAD", dst=(6,), src=(4, 0)),
            a.op("IMAD", dst=(7,), src=(1, 5)),
            a.op("IMAD.WIDE", dst=(10, 11), src=(6,)),
            a.op("IMAD.WIDE", dst=(12, 13), src=(7,)),
            a.op("IMAD", dst=(9,), src=(1, 0)),
        ]
        for w in range(nwarps):
            coords = _lane_coords(w, t)
            rows = [by * t + ty for _, ty in coords]
            cols = [bx * t + tx for tx, _ in coords]
            body = self._loop_body(w)
            insts = list(prologue)
            # a trip whose tile lies inside A (B) loads every lane, at the first trip's
            # addresses moved along k
            a_in = max(rows) < M
            b_in = max(cols) < N
            max_tx = max(tx for tx, _ in coords)
            max_ty = max(ty for _, ty in coords)
            full = (1 << len(coords)) - 1
            a0 = [self._A + (r * K + tx) * F4 for r, (tx, _) in zip(rows, coords, strict=True)]
            b0 = [self._B + (ty * N + c) * F4 for c, (_, ty) in zip(cols, coords, strict=True)]
            for trip in range(self.trips):
                k0 = trip * t
                if a_in and k0 + max_tx < K:
                    ma = full
                    addrs = [x + k0 * F4 for x in a0]
                else:
                    ma = lanes_mask(
                        r < M and k0 + tx < K for r, (tx, _) in zip(rows, coords, strict=True)
                    )
                    addrs = [
                        self._A + (r * K + k0 + tx) * F4
                        for r, (tx, _) in zip(rows, coords, strict=True)
                        if r < M and k0 + tx < K
                    ]
                if ma:
                    insts.append(
                        a.mem("LDG.E", "global", 4, addrs, dst=(14,), src=(10, 11), mask=ma)
                    )
                if b_in and k0 + max_ty < K:
                    mb = full
                    addrs = [x + k0 * N * F4 for x in b0]
                else:
                    mb = lanes_mask(
                        k0 + ty < K and c < N for c, (_, ty) in zip(cols, coords, strict=True)
                    )
                    addrs = [
                        self._B + ((k0 + ty) * N + c) * F4
                        for c, (_, ty) in zip(cols, coords, strict=True)
                        if k0 + ty < K and c < N
                    ]
                if mb:
                    insts.append(
                        a.mem("LDG.E", "global", 4, addrs, dst=(15,), src=(12, 13), mask=mb)
                    )
                insts.extend(body)
            mc = lanes_mask(r < M and c < N for r, c in zip(rows, cols, strict=True))
            insts.append(a.op("IMAD.WIDE", dst=(10, 11), src=(4, 5)))
            if mc:
                addrs = [
                    self._C + (r * N + c) * F4
                    for r, c in zip(rows, cols, strict=True)
                    if r < M and c < N
                ]
                insts.append(a.mem("STG.E", "global", 4, addrs, src=(10, 11, TILED_ACC), mask=mc))
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps


@dataclass
class NaiveGemm(GemmBase):
    """``sgemm_naive``: one thread per C element, 16 x 16 threads per block, A and B read
    straight from global memory (the loop unrolled by 4, as nvcc does)."""

    block_dim: int = 16

    @property
    def name(self) -> str:
        return "gemm_naive"

    @property
    def kernel(self) -> str:
        return "sgemm_naive"

    @property
    def k_step(self) -> int:
        return 4

    def tiles(self) -> dict[str, int]:
        b = self.block_dim
        return {"tile_m": b, "tile_n": b, "tile_k": 1, "thread_tile_m": 1, "thread_tile_n": 1,
                "threads_per_block": b * b}

    def launch(self) -> KernelLaunch:
        b = self.block_dim
        return KernelLaunch(
            name="sgemm_naive",
            grid=(-(-self.N // b), -(-self.M // b), 1),
            block=(b, b, 1),
            regs_per_thread=32,  # assumption: a small kernel; registers do not limit occupancy
            shared_bytes=0,
        )

    def make_block(self, index: int) -> list[list[Instruction]]:
        a, b = self._asm, self.block_dim
        M, N, K = self.M, self.N, self.K
        launch = self.launch()
        bx, by, _ = launch.block_coords(index)
        warps = []
        for w in range(launch.warps_per_block()):
            coords = _lane_coords(w, b)
            rc = [(by * b + ty, bx * b + tx) for tx, ty in coords]
            live = [(r, c) for r, c in rc if r < M and c < N]
            mask = lanes_mask(r < M and c < N for r, c in rc)
            insts = [
                a.op("S2R", dst=(0,)),
                a.op("S2R", dst=(1,)),
                a.op("IMAD", dst=(2,), src=(0, 1)),
                a.op("ISETP.GE.AND", src=(2,)),
                a.op("MOV", dst=(8,)),
            ]
            if mask:
                steps = min(K, self.trips * 4)
                for k0 in range(0, steps, 4):
                    ks = range(k0, min(k0 + 4, steps))
                    for j, k in enumerate(ks):
                        insts.append(
                            a.mem(
                                "LDG.E",
                                "global",
                                4,
                                [self._A + (r * K + k) * F4 for r, _ in live],
                                dst=(12 + j,),
                                src=(4, 5),
                                mask=mask,
                            )
                        )
                        insts.append(
                            a.mem(
                                "LDG.E",
                                "global",
                                4,
                                [self._B + (k * N + c) * F4 for _, c in live],
                                dst=(16 + j,),
                                src=(6, 7),
                                mask=mask,
                            )
                        )
                    for j, _ in enumerate(ks):
                        insts.append(a.op("FFMA", dst=(8,), src=(12 + j, 16 + j, 8), mask=mask))
                    insts += [
                        a.op("IADD3", dst=(4,), src=(4,), mask=mask),
                        a.op("IADD3", dst=(6,), src=(6,), mask=mask),
                        a.op("ISETP.GE.AND", src=(3,), mask=mask),
                        a.op("BRA", mask=mask),
                    ]
                insts.append(
                    a.mem(
                        "STG.E",
                        "global",
                        4,
                        [self._C + (r * N + c) * F4 for r, c in live],
                        src=(10, 11, 8),
                        mask=mask,
                    )
                )
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps


@dataclass
class RegBlockGemm(GemmBase):
    """``sgemm_regblock``: BM x BN block tile, BK deep, TM x TN register tile per thread."""

    BM: int = 64
    BN: int = 64
    BK: int = 16
    TM: int = 4
    TN: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(BM=self.BM, BN=self.BN, BK=self.BK, TM=self.TM, TN=self.TN)
        if self.BM % self.TM or self.BN % self.TN or self.TM % 4 or self.TN % 4:
            raise SimgpuError(
                f"BM {self.BM} / TM {self.TM}, BN {self.BN} / TN {self.TN}: expected TM, TN"
                " multiples of 4 dividing BM, BN"
            )
        if self.threads % 32 or self.threads > 1024:
            raise SimgpuError(
                f"{self.threads} threads per block: expected a multiple of 32 <= 1024"
            )
        self._inner: dict[int, list[Instruction]] = {}

    @property
    def name(self) -> str:
        return "gemm_regblock"

    @property
    def kernel(self) -> str:
        return "sgemm_regblock"

    @property
    def threads(self) -> int:
        return (self.BM // self.TM) * (self.BN // self.TN)

    @property
    def k_step(self) -> int:
        return self.BK

    def tiles(self) -> dict[str, int]:
        return {"tile_m": self.BM, "tile_n": self.BN, "tile_k": self.BK,
                "thread_tile_m": self.TM, "thread_tile_n": self.TN,
                "threads_per_block": self.threads}

    def launch(self) -> KernelLaunch:
        return KernelLaunch(
            name=f"sgemm_regblock<{self.BM},{self.BN},{self.BK},{self.TM},{self.TN}>",
            grid=(-(-self.N // self.BN), -(-self.M // self.BM), 1),
            block=(self.threads, 1, 1),
            # TM*TN accumulators + TM + TN fragments + about 24 for addresses and indices
            # (assumption: nvcc's allocation for this kernel, not measured).
            regs_per_thread=min(255, self.TM * self.TN + self.TM + self.TN + 24),
            shared_bytes=(self.BK * self.BM + self.BK * self.BN) * F4,
        )

    def _acc_reg(self, i: int, j: int) -> int:
        """Accumulator register of C[i][j] of the thread tile: R48 on, row by row.
        assumption: consecutive, as the array ``acc[TM][TN]`` is declared; then an FFMA's B
        fragment and accumulator share a bank (mod 2) and, for i = j mod 2, its A fragment
        too. nvcc's allocation of this kernel has not been read (no SASS of it here): a
        bank-aware one (no FFMA with all three sources in one bank mod 2, as in the sm_61
        build of the tiled kernel, shared/data/accelsim/traces/matrixmul32) makes the
        simulated 256^3-1024^3 register-blocked rows 21-36% faster than measured."""
        return 48 + i * self.TN + j

    def _stage_reg(self, tile: str, n: int) -> int:
        """Register that stages the ``n``-th global load of a trip's ``tile`` ("A" or "B") on
        its way to shared memory: one register per load, after the accumulators (R48 on), so
        that the loads of a trip are all in flight at once, as nvcc allocates them (one load
        per register: a load into a register an earlier load has not yet written waits for it,
        which serialised the trip's loads)."""
        base = 48 + self.TM * self.TN
        return base + n if tile == "A" else base + -(-self.BM * self.BK // self.threads) + n

    def _loop_body(self, w: int) -> list[Instruction]:
        if w in self._inner:
            return self._inner[w]
        a = self._asm
        BM, BN, BK, TM, TN, T = self.BM, self.BN, self.BK, self.TM, self.TN, self.threads
        tids = [32 * w + lane for lane in range(32)]
        body: list[Instruction] = []
        bs_base = BK * BM * F4
        for n, e0 in enumerate(range(0, BM * BK, T)):
            es = [e0 + t for t in tids]
            body.append(
                a.mem(
                    "STS",
                    "shared",
                    4,
                    [((e % BK) * BM + e // BK) * F4 for e in es],
                    src=(9, self._stage_reg("A", n)),
                    cache=True,
                )
            )
        for n, e0 in enumerate(range(0, BK * BN, T)):
            es = [e0 + t for t in tids]
            body.append(
                a.mem(
                    "STS",
                    "shared",
                    4,
                    [bs_base + ((e // BN) * BN + e % BN) * F4 for e in es],
                    src=(9, self._stage_reg("B", n)),
                    cache=True,
                )
            )
        body.append(a.op("BAR.SYNC"))
        trow = [t // (BN // TN) for t in tids]
        tcol = [t % (BN // TN) for t in tids]
        for k in range(BK):
            for i4 in range(0, TM, 4):
                body.append(
                    a.mem(
                        "LDS.128",
                        "shared",
                        16,
                        [(k * BM + r * TM + i4) * F4 for r in trow],
                        dst=range(8 + i4, 12 + i4),
                        src=(5,),
                        cache=True,
                    )
                )
            for j4 in range(0, TN, 4):
                body.append(
                    a.mem(
                        "LDS.128",
                        "shared",
                        16,
                        [bs_base + (k * BN + c * TN + j4) * F4 for c in tcol],
                        dst=range(24 + j4, 28 + j4),
                        src=(6,),
                        cache=True,
                    )
                )
            for i in range(TM):
                for j in range(TN):
                    r = self._acc_reg(i, j)
                    body.append(a.op("FFMA", dst=(r,), src=(8 + i, 24 + j, r)))
        body += [
            a.op("BAR.SYNC"),
            a.op("IADD3", dst=(10,), src=(10,)),
            a.op("IADD3", dst=(12,), src=(12,)),
            a.op("ISETP.GE.AND", src=(7,)),
            a.op("BRA"),
        ]
        self._inner[w] = body
        return body

    def make_block(self, index: int) -> list[list[Instruction]]:
        a = self._asm
        M, N, K = self.M, self.N, self.K
        BM, BN, BK, TM, TN, T = self.BM, self.BN, self.BK, self.TM, self.TN, self.threads
        launch = self.launch()
        bx, by, _ = launch.block_coords(index)
        row0, col0 = by * BM, bx * BN
        warps = []
        prologue = [
            a.op("S2R", dst=(0,)),
            a.op("S2R", dst=(1,)),
            a.op("S2R", dst=(2,)),
            a.op("IMAD", dst=(5,), src=(0,)),
            a.op("IMAD", dst=(6,), src=(0,)),
            a.op("IMAD", dst=(9,), src=(0,)),
            a.op("IMAD.WIDE", dst=(10, 11), src=(1, 0)),
            a.op("IMAD.WIDE", dst=(12, 13), src=(2, 0)),
        ]
        prologue += [a.op("MOV", dst=(self._acc_reg(i, j),)) for i in range(TM) for j in range(TN)]
        for w in range(launch.warps_per_block()):
            tids = [32 * w + lane for lane in range(32)]
            insts = list(prologue)
            body = self._loop_body(w)
            for trip in range(self.trips):
                k0 = trip * BK
                for n, e0 in enumerate(range(0, BM * BK, T)):
                    pts = [(row0 + (e0 + t) // BK, k0 + (e0 + t) % BK) for t in tids]
                    m = lanes_mask(r < M and k < K for r, k in pts)
                    if m:
                        insts.append(
                            a.mem(
                                "LDG.E",
                                "global",
                                4,
                                [self._A + (r * K + k) * F4 for r, k in pts if r < M and k < K],
                                dst=(self._stage_reg("A", n),),
                                src=(10, 11),
                                mask=m,
                            )
                        )
                for n, e0 in enumerate(range(0, BK * BN, T)):
                    pts = [(k0 + (e0 + t) // BN, col0 + (e0 + t) % BN) for t in tids]
                    m = lanes_mask(k < K and c < N for k, c in pts)
                    if m:
                        insts.append(
                            a.mem(
                                "LDG.E",
                                "global",
                                4,
                                [self._B + (k * N + c) * F4 for k, c in pts if k < K and c < N],
                                dst=(self._stage_reg("B", n),),
                                src=(12, 13),
                                mask=m,
                            )
                        )
                insts.extend(body)
            trow = [t // (BN // TN) for t in tids]
            tcol = [t % (BN // TN) for t in tids]
            for i in range(TM):
                for j in range(TN):
                    pts = [
                        (row0 + r * TM + i, col0 + c * TN + j)
                        for r, c in zip(trow, tcol, strict=True)
                    ]
                    m = lanes_mask(r < M and c < N for r, c in pts)
                    if m:
                        insts.append(
                            a.mem(
                                "STG.E",
                                "global",
                                4,
                                [self._C + (r * N + c) * F4 for r, c in pts if r < M and c < N],
                                src=(10, 11, self._acc_reg(i, j)),
                                mask=m,
                            )
                        )
            insts.append(a.op("EXIT"))
            warps.append(insts)
        return warps


_ = FULL
