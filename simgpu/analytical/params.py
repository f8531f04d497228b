"""The figures of a device that the closed forms need, flattened out of a DeviceSpec.

:class:`DeviceParams` is a plain frozen record of numbers, so the analytical model can also run
from a device description that is not a full ``models/*.toml`` file (the published datasets
describe their GPUs with a handful of figures; see :func:`DeviceParams.from_figures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from simgpu.arch.occupancy import SMResources, smem_alloc_unit_B, smem_reserved_per_block_B

#: dtypes the GEMM model knows, and their input element size in bytes.
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
#: Output (C) element size: cuBLAS writes C in the input type for fp16/bf16 and in fp32 for
#: fp32/tf32 (the calibration runner stores C like that); fp8 GEMMs write fp16/bf16 (cuBLASLt
#: does not write fp8 C by default).
DTYPE_OUT_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 2}

#: Host-side cost of one kernel launch, seconds. Source: calibration run
#: calibration/h100-sxm/20261122T154219Z launch.csv, launch_back_to_back_us = 6.14 us (5000 empty
#: launches enqueued from Python, GPU time between events / n). assumption: the same on every
#: device (it is set by the host, driver and Python, not by the GPU).
DEFAULT_LAUNCH_OVERHEAD_S = 6.14e-6

#: Operand bytes per row of a K step that tensor-op GEMM tiles take, per mainloop generation
#: (``ampere``: compute capability 8.x and older, ``mma.sync``; ``hopper``: 9.0 and up,
#: ``wgmma``). Source: CUTLASS's kernel generator lists sm_80 tiles of both 128 and 64 bytes
#: (256x128x64 and 256x128x32 for fp16, 256x128x32 and 256x128x16 for tf32:
#: python/cutlass_library/generator.py, GenerateSM80_TensorOp_16816 and _1688) and sm_90 tiles of
#: 4, 8 or 16 wgmma K steps, 128 bytes and up (python/cutlass_library/sm90_shapes.py,
#: SM90_MMA_MULTIPLIERS).
LIBRARY_ROW_BYTES = {"ampere": (128, 64), "hopper": (128,)}


def mainloop_generation(compute_capability: str) -> str:
    """``hopper`` where the device has wgmma and a stream-K library (compute capability 9.0 and
    up), else ``ampere`` (the keys of :data:`LIBRARY_ROW_BYTES`)."""
    return "hopper" if int(compute_capability.split(".")[0]) >= 9 else "ampere"



@dataclass(frozen=True)
class DeviceParams:
    """Numbers the closed forms use. Rates at the boost clock."""

    name: str
    sm_count: int
    clock_MHz: float
    #: what one SM offers a launch's blocks (the occupancy rule's inputs)
    sm: SMResources
    fp32_lanes_per_sm: int
    #: Peak TFLOP/s per GEMM dtype; a dtype without a tensor path maps to the FP32 FFMA peak.
    peak_TFLOPS: dict[str, float]
    #: Which dtypes run on tensor cores on this device.
    tensor: dict[str, bool]
    dram_bandwidth_GBps: float
    dram_latency_ns: float
    l2_bandwidth_GBps: float
    l2_size_B: float
    l2_latency_cycles: float
    l2_far_latency_cycles: float | None
    l1_latency_cycles: float
    shared_latency_cycles: float
    #: L1 / shared-memory bytes per cycle per SM (one 128-B wavefront per cycle at 128).
    l1_bytes_per_cycle: float
    l1_size_B: float
    pcie_GBps: float
    pcie_measured_h2d_GBps: float | None
    pcie_measured_d2h_GBps: float | None
    pcie_latency_us: float
    tdp_W: float
    idle_W: float
    static_W: float
    energy_pJ: dict[str, float] = field(default_factory=dict)
    launch_overhead_s: float = DEFAULT_LAUNCH_OVERHEAD_S
    #: Warp schedulers (sub-cores) per SM: each issues one warp instruction per cycle (two,
    #: from different pipes, with :attr:`dispatch_per_scheduler` 2).
    schedulers_per_sm: int = 4
    #: Instructions a scheduler dispatches per cycle: 2 on Maxwell and Pascal (two dispatch
    #: units per scheduler: NVIDIA GP100 and GP104 whitepapers), 1 from Volta on (Volta
    #: whitepaper, SM sub-core: one warp scheduler, one dispatch unit).
    dispatch_per_scheduler: int = 1
    #: Issue slots a library SIMT GEMM loses per FFMA beyond its counted instructions (the
    #: device file's ``compute.simt_issue_overhead``; 0 unless a calibration fitted it).
    simt_issue_overhead: float = 0.0
    #: Shortest time the host's harness measures one library GEMM call in, per dtype, s (the
    #: device file's ``host_link.library_call_floor_us``; empty unless a calibration fitted it).
    library_floor_s: dict[str, float] = field(default_factory=dict)
    #: Shortest time the host's harness measures one call of simgpu's own kernels in, per kind
    #: (stream, reduction, transpose, gemv), s (the device file's
    #: ``host_link.kernel_call_floor_us``; empty unless a calibration fitted it).
    kernel_floor_s: dict[str, float] = field(default_factory=dict)
    #: Bytes of L2 bandwidth one request occupies at least, whatever its sectors (the device
    #: file's ``noc.slice_request_bytes``: one tag lookup and one line-wide data slot per
    #: request, as the simulator's crossbar books it); 0: a request occupies its own bytes.
    l2_request_bytes: float = 0.0
    #: L2 partitions (near/far halves): a footprint within one partition's share of the L2 is
    #: served at the near latency (the device file's ``l2.partitions``).
    l2_partitions: int = 1
    #: Whether the library's tensor-core GEMMs are persistent kernels with a stream-K tile
    #: scheduler (:class:`simgpu.analytical.gemm.StreamKPlan`): compute capability 9.0 and up,
    #: whose CUTLASS 3 kernels have one (cutlass/gemm/kernel/sm90_tile_scheduler_stream_k.hpp).
    library_streamk: bool = False
    #: Operand bytes per row of a K step that the library's tensor-op tiles may take
    #: (:data:`LIBRARY_ROW_BYTES` of the device's mainloop generation).
    library_row_bytes: tuple[int, ...] = (128,)

    @property
    def clock_hz(self) -> float:
        return self.clock_MHz * 1e6

    def peak_flops(self, dtype: str) -> float:
        """Peak FLOP/s for a GEMM dtype (FFMA for fp32)."""
        return self.peak_TFLOPS[dtype] * 1e12

    def with_energies(self, energy_pJ: dict[str, float]) -> DeviceParams:
        """A copy with another energy table (for fitting)."""
        return replace(self, energy_pJ=dict(energy_pJ))

    def features(self) -> dict[str, float]:
        """The device figures a cross-GPU predictor uses (all available for any GPU)."""
        return {
            "dev_sm_count": float(self.sm_count),
            "dev_clock_MHz": self.clock_MHz,
            "dev_dram_GBps": self.dram_bandwidth_GBps,
            "dev_l2_MiB": self.l2_size_B / 2**20,
            "dev_peak_fp32_TFLOPS": self.peak_TFLOPS["fp32"],
        }

    @classmethod
    def from_spec(cls, spec: Any) -> DeviceParams:
        """From a :class:`simgpu.devices.DeviceSpec`."""
        if isinstance(spec, DeviceParams):
            return spec
        c = spec.compute
        fp32 = c.peak_fp32_TFLOPS
        tensor_peaks = {
            "tf32": c.peak_tf32_tensor_TFLOPS,
            "fp16": c.peak_fp16_tensor_TFLOPS,
            "bf16": c.peak_bf16_tensor_TFLOPS,
            "fp8": c.peak_fp8_tensor_TFLOPS,
        }
        peak = {"fp32": fp32}
        tensor = {"fp32": False}
        for dtype, value in tensor_peaks.items():
            # No tensor path for this dtype: the GEMM runs on FFMA lanes (fp16 converted to
            # fp32 inside the kernel), so the FP32 peak bounds it.
            peak[dtype] = value if value is not None else fp32
            tensor[dtype] = value is not None
        generation = mainloop_generation(spec.compute_capability)
        return cls(
            name=spec.name,
            sm_count=c.sm_count,
            clock_MHz=c.boost_clock_MHz,
            sm=SMResources.from_spec(spec),
            fp32_lanes_per_sm=c.fp32_lanes_per_sm,
            peak_TFLOPS=peak,
            tensor=tensor,
            dram_bandwidth_GBps=spec.dram.peak_bandwidth_GBps,
            dram_latency_ns=spec.dram.unloaded_latency_ns,
            l2_bandwidth_GBps=spec.l2.bandwidth_GBps,
            l2_size_B=float(spec.l2.size_bytes),
            l2_latency_cycles=spec.l2.near_hit_latency_cycles,
            l2_far_latency_cycles=spec.l2.far_hit_latency_cycles,
            l1_latency_cycles=spec.l1.hit_latency_cycles,
            shared_latency_cycles=spec.l1.shared_latency_cycles,
            l1_bytes_per_cycle=spec.l1.bandwidth_bytes_per_cycle,
            l1_size_B=float(spec.l1.size_bytes),
            pcie_GBps=spec.host_link.bandwidth_per_direction_GBps,
            pcie_measured_h2d_GBps=spec.host_link.measured_h2d_GBps,
            pcie_measured_d2h_GBps=spec.host_link.measured_d2h_GBps,
            pcie_latency_us=spec.host_link.latency_us,
            tdp_W=spec.power.tdp_W,
            idle_W=spec.power.idle_W,
            static_W=spec.power.static_W,
            energy_pJ=dict(spec.power.energy_pJ),
            schedulers_per_sm=c.warp_schedulers_per_sm,
            dispatch_per_scheduler=2 if int(spec.compute_capability.split(".")[0]) < 7 else 1,
            library_streamk=generation == "hopper",
            library_row_bytes=LIBRARY_ROW_BYTES[generation],
            simt_issue_overhead=c.simt_issue_overhead,
            library_floor_s={k: v * 1e-6 for k, v in
                             spec.host_link.library_call_floor_us.items()},
            kernel_floor_s={k: v * 1e-6 for k, v in
                            spec.host_link.kernel_call_floor_us.items()},
            l2_request_bytes=float(spec.noc.slice_request_bytes or 0),
            l2_partitions=spec.l2.partitions,
        )

    @classmethod
    def from_figures(
        cls,
        *,
        name: str,
        sm_count: int,
        clock_MHz: float,
        fp32_lanes_per_sm: int,
        dram_bandwidth_GBps: float,
        l2_size_MiB: float,
        smem_per_sm_KiB: float,
        tdp_W: float,
    ) -> DeviceParams:
        """A GPU known only by the handful of figures a published dataset gives.

        Everything else takes the value every NVIDIA GPU since Volta shares (CUDA C++ Programming
        Guide, technical specifications for cc 6.x-9.0: warp 32, 64 K registers per SM, 255 per
        thread, 1024 threads per block), or an assumption stated beside it. Such a device has no
        tensor-core path: the published datasets here are FP32 SGEMM only.
        """
        fp32 = sm_count * fp32_lanes_per_sm * 2 * clock_MHz / 1e6
        return cls(
            name=name,
            sm_count=sm_count,
            clock_MHz=clock_MHz,
            sm=SMResources(
                warp_size=32,
                max_threads_per_block=1024,
                max_warps_per_sm=64,  # 2048 threads: cc 6.x-8.0 (1024 on cc 7.5)
                max_blocks_per_sm=32,  # cc 6.x-9.0 (16 on cc 7.5)
                registers_per_sm=65536,
                # four warp schedulers per SM from Maxwell on (two sub-partitions on cc 6.0:
                # cuda_occupancy.h, cudaOccSubPartitionsPerMultiprocessor)
                register_sub_partitions=4,
                max_registers_per_thread=255,
                max_registers_per_block=65536,
                smem_per_sm_B=int(smem_per_sm_KiB * 1024),
                # 48 KB static limit per block (CUDA C++ Programming Guide)
                smem_per_block_B=int(min(smem_per_sm_KiB, 48.0) * 1024),
                # assumption: the cc 8.x allocation rules (the GPU's cc is not among the figures)
                smem_alloc_unit_B=smem_alloc_unit_B(8),
                smem_reserved_per_block_B=smem_reserved_per_block_B(8),
            ),
            fp32_lanes_per_sm=fp32_lanes_per_sm,
            peak_TFLOPS={d: fp32 for d in DTYPE_BYTES},
            tensor={d: False for d in DTYPE_BYTES},
            dram_bandwidth_GBps=dram_bandwidth_GBps,
            # assumption: ~ 400-500 ns on every GDDR/HBM GPU measured in published/gpu_numbers.csv
            dram_latency_ns=450.0,
            # assumption: L2 read bandwidth about 3x DRAM bandwidth, the ratio on A100 (NVIDIA
            # A100 whitepaper: 2.3x V100 L2 bandwidth; measured ~ 4.6 TB/s vs 1.56 TB/s DRAM)
            l2_bandwidth_GBps=3.0 * dram_bandwidth_GBps,
            l2_size_B=l2_size_MiB * 2**20,
            # assumption: ~ 200 cycles, the V100/A100 L2 hit latency (published/gpu_numbers.csv)
            l2_latency_cycles=200.0,
            l2_far_latency_cycles=None,
            l1_latency_cycles=30.0,  # assumption: 28-34 cycles on Volta..Hopper (gpu_numbers.csv)
            shared_latency_cycles=25.0,  # assumption: 19-29 cycles Volta..Hopper (gpu_numbers.csv)
            l1_bytes_per_cycle=128.0,  # 32 banks x 4 B (CUDA C++ Programming Guide)
            l1_size_B=smem_per_sm_KiB * 1024,  # assumption: unified L1 as large as shared max
            pcie_GBps=15.75,  # PCIe gen3 x16 after 128b/130b coding
            pcie_measured_h2d_GBps=None,
            pcie_measured_d2h_GBps=None,
            pcie_latency_us=7.2,  # assumption: as in models/h100-sxm.toml
            tdp_W=tdp_W,
            idle_W=0.1 * tdp_W,  # assumption: as the device files' placeholders (10% of TDP)
            static_W=0.2 * tdp_W,  # assumption: as the device files' placeholders (20% of TDP)
        )


def params(spec: Any) -> DeviceParams:
    """:class:`DeviceParams` of a DeviceSpec (or the same DeviceParams)."""
    return DeviceParams.from_spec(spec)
