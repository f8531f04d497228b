"""Place a workload on the GPU, a PIM device or a dataflow device, and compare the placements.

A workload is a list of :class:`Op` (GEMV, GEMM, element-wise); :func:`decode_step` builds the
ops of one GPT-style decode step (batch 1). Every placement has the same host: the GPU, which
runs the element-wise ops, launches every kernel and, for an off-package device, sends each
op's input activations and fetches its outputs over the device's PCIe link. Weights are
resident where the op runs (loaded once, before the timed step).

Per op and placement (:func:`cost`):

* **GPU**: GEMV (fp16 weights, batch 1) is a DRAM stream: launch + DRAM latency + max(bytes /
  DRAM bandwidth, flops / FP32 peak), the :mod:`simgpu.analytical` roofline terms
  (:class:`~simgpu.analytical.params.DeviceParams`), and its event-energy power model; GEMM is
  :func:`simgpu.analytical.gemm` (fp16, cuBLAS-like tiling).
* **PIM**: GEMV is :func:`simgpu.sim.pim.simulate_gemv` on the device (``pim_devices`` stacks
  or cards split the rows); GEMM is N GEMVs. The host pays a kernel launch per op.
* **dataflow**: GEMV/GEMM is :func:`simgpu.sim.dataflow.simulate_gemm` with the fastest of
  the three dataflows; PCIe carries inputs and outputs when the device is off-package
  (:class:`simgpu.sim.pcie.HostLink`, pinned copies, one each way per op).

Energy: the GPU figure is the analytical power model (static + events). For PIM and dataflow
placements it is the device's own energy plus the host GPU at ``idle_W`` for the time the host
waits (its clocks stay up; assumption: idle power, as the host does no work meanwhile).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import simpy

from simgpu.analytical import gemm
from simgpu.analytical import power as pw
from simgpu.analytical.params import DeviceParams
from simgpu.devices.dataflow import DataflowSpec
from simgpu.devices.pim import PimSpec
from simgpu.devices.spec import Device, DeviceSpec, HostLinkSpec
from simgpu.errors import SimgpuError
from simgpu.sim.dataflow import simulate_gemm
from simgpu.sim.pcie import CopyResult, HostLink
from simgpu.sim.pim import simulate_gemv

__all__ = [
    "Op",
    "OpCost",
    "GptConfig",
    "GPT2_MODELS",
    "gemv_op",
    "gemm_op",
    "decode_step",
    "pcie_time_s",
    "cost",
    "place",
    "compare",
]

OP_KINDS = ("gemv", "gemm", "elementwise")


@dataclass(frozen=True)
class Op:
    """One kernel of a workload: ``y[M, N] = W[M, K] @ x[K, N]`` (GEMV: N = 1), or an
    element-wise kernel moving ``nbytes``; ``count`` identical copies (e.g. one per layer)."""

    name: str
    kind: str
    M: int = 1
    N: int = 1
    K: int = 1
    nbytes: float = 0.0
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise SimgpuError(f"op {self.name!r}: kind = {self.kind!r}, expected {OP_KINDS}")
        for field_name in ("M", "N", "K", "count"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SimgpuError(
                    f"op {self.name!r}: {field_name} = {value!r}, expected an integer >= 1"
                )
        if self.kind == "gemv" and self.N != 1:
            raise SimgpuError(f"op {self.name!r}: a GEMV has N = 1, got N = {self.N}")

    @property
    def flops(self) -> float:
        """Useful flops of one copy."""
        return 0.0 if self.kind == "elementwise" else 2.0 * self.M * self.N * self.K


def gemv_op(M: int, K: int, name: str = "gemv", count: int = 1) -> Op:
    """``y = W x`` with W of M x K."""
    return Op(name=name, kind="gemv", M=M, K=K, count=count)


def gemm_op(M: int, N: int, K: int, name: str = "gemm", count: int = 1) -> Op:
    """``C = A B`` with A of M x K (the weights) and B of K x N."""
    return Op(name=name, kind="gemm", M=M, N=N, K=K, count=count)


@dataclass(frozen=True)
class GptConfig:
    """A GPT-2-style decoder: width, depth, heads, vocabulary."""

    name: str
    d_model: int
    layers: int
    heads: int
    vocab: int = 50257  # Radford et al. 2019 (GPT-2): byte-level BPE vocabulary of 50,257

    @property
    def parameters(self) -> int:
        """Weights of the matrix ops (12 d^2 per layer) plus the tied embedding (vocab x d)."""
        return 12 * self.d_model**2 * self.layers + self.vocab * self.d_model


#: GPT-2 sizes (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners",
#: Table 2: layers / d_model 12/768, 24/1024, 36/1280, 48/1600; heads d_model / 64).
GPT2_MODELS = {
    "gpt2-125m": GptConfig("gpt2-125m", 768, 12, 12),
    "gpt2-350m": GptConfig("gpt2-350m", 1024, 24, 16),
    "gpt2-774m": GptConfig("gpt2-774m", 1280, 36, 20),
    "gpt2-1.5b": GptConfig("gpt2-1.5b", 1600, 48, 25),
}


def decode_step(model: GptConfig, seq_len: int, elem_bytes: int = 2) -> list[Op]:
    """The ops of one decode step at batch 1 with ``seq_len`` tokens in the KV cache.

    Per layer: QKV projection (3d x d), attention scores (heads x seq rows of the K cache
    against the query: a GEMV of heads*seq x d/heads), attention values (d x seq rows of the V
    cache against the probabilities), output projection (d x d), MLP up (4d x d) and down
    (d x 4d); element-wise work (2 layer norms, softmax, GELU, 2 residual adds) as one op of
    six kernel launches' worth of bytes. Then the LM head (vocab x d).
    """
    if seq_len < 1:
        raise SimgpuError(f"decode_step: seq_len = {seq_len}, expected >= 1")
    d, L, h = model.d_model, model.layers, model.heads
    hd = d // h
    # element-wise bytes per layer: read+write d values per layer norm (2), residual (2), GELU on
    # 4d, softmax over h x seq scores
    ew = elem_bytes * (2 * 2 * d + 2 * 2 * d + 2 * 4 * d + 2 * h * seq_len)
    ops = [
        gemv_op(3 * d, d, "qkv", L),
        gemv_op(h * seq_len, hd, "attn_score", L),
        gemv_op(d, seq_len, "attn_value", L),
        gemv_op(d, d, "attn_out", L),
        gemv_op(4 * d, d, "mlp_up", L),
        gemv_op(d, 4 * d, "mlp_down", L),
    ]
    ops += [
        Op(name=f"elementwise_{i}", kind="elementwise", nbytes=ew / 6, count=L) for i in range(6)
    ]
    ops.append(gemv_op(model.vocab, d, "lm_head", 1))
    return ops


@dataclass(frozen=True)
class OpCost:
    """Time, energy and bytes of one op (all its copies) under one placement."""

    placement: str
    device: str
    op: str
    kind: str
    count: int
    M: int
    N: int
    K: int
    time_s: float
    device_time_s: float  # the device busy on the op (no launch or transfer)
    launch_s: float
    pcie_s: float
    energy_J: float
    device_bytes: float  # bytes the device moves from its own memory (DRAM, or banks for PIM)
    pcie_bytes: float
    flops: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


def pcie_time_s(
    link: HostLinkSpec, nbytes: float, direction: str = "h2d", pinned: bool = True
) -> float:
    """One copy of ``nbytes`` over ``link`` in the :class:`simgpu.sim.pcie.HostLink` model
    (latency, then the direction's DMA bandwidth; pageable copies staged), seconds."""
    if nbytes <= 0:
        return 0.0
    env = simpy.Environment()
    copy = HostLink(env, link, clock_MHz=1000.0).copy(math.ceil(nbytes), direction, pinned)
    env.run()
    result = copy.value
    if not isinstance(result, CopyResult):  # pragma: no cover - the process always returns one
        raise SimgpuError("host link copy did not finish")
    return float(result.seconds)


def _gpu_params(host: DeviceSpec) -> DeviceParams:
    return DeviceParams.from_spec(host)


def _gpu_cost(host: DeviceSpec, op: Op, elem_bytes: int) -> OpCost:
    p = _gpu_params(host)
    if op.kind == "gemm":
        row = gemm(host, op.M, op.N, op.K, "fp16").iloc[0]
        t = float(row["time_s"])
        e = float(row["energy_J"])
        dev_bytes = float(row["dram_bytes"])
        launch = p.launch_overhead_s
        busy = t - launch
    else:
        if op.kind == "gemv":
            nbytes = float(elem_bytes * (op.M * op.K + op.K + op.M))
            flops = op.flops
        else:
            nbytes, flops = float(op.nbytes), 0.0
        busy = max(
            nbytes / (p.dram_bandwidth_GBps * 1e9),
            nbytes / (p.l2_bandwidth_GBps * 1e9),
            flops / (p.peak_TFLOPS["fp32"] * 1e12),  # assumption: GEMV runs on CUDA cores
        )
        launch = p.launch_overhead_s
        t = launch + p.dram_latency_ns * 1e-9 + busy
        events = {"dram_byte": nbytes, "l2_byte": nbytes, "l1_byte": nbytes, "ffma_flop": flops}
        _, energy, _ = pw.power(p, events, np.asarray(t), np.asarray(busy / t))
        e = float(energy)
        dev_bytes = nbytes
    return OpCost(
        placement="gpu",
        device=host.name,
        op=op.name,
        kind=op.kind,
        count=op.count,
        M=op.M,
        N=op.N,
        K=op.K,
        time_s=t * op.count,
        device_time_s=busy * op.count,
        launch_s=launch * op.count,
        pcie_s=0.0,
        energy_J=e * op.count,
        device_bytes=dev_bytes * op.count,
        pcie_bytes=0.0,
        flops=op.flops * op.count,
    )


def _offload(
    host: DeviceSpec,
    target: Device,
    op: Op,
    placement: str,
    device_time: float,
    device_energy: float,
    device_bytes: float,
    act_bytes: int,
) -> OpCost:
    """Wrap a device's own time and energy with the host's launch, PCIe and idle power."""
    p = _gpu_params(host)
    on_package = bool(getattr(target, "on_package", True))
    link = getattr(target, "host_link", None)
    pcie_bytes = 0.0
    pcie = 0.0
    if not on_package:
        if not isinstance(link, HostLinkSpec):  # pragma: no cover - specs enforce it
            raise SimgpuError(f"{target.name}: off-package device without [host_link]")
        into = act_bytes * op.K * op.N
        out = act_bytes * op.M * op.N
        pcie_bytes = float(into + out)
        pcie = pcie_time_s(link, into, "h2d") + pcie_time_s(link, out, "d2h")
    launch = p.launch_overhead_s
    t = launch + pcie + device_time
    energy = device_energy + host.power.idle_W * t
    return OpCost(
        placement=placement,
        device=target.name,
        op=op.name,
        kind=op.kind,
        count=op.count,
        M=op.M,
        N=op.N,
        K=op.K,
        time_s=t * op.count,
        device_time_s=device_time * op.count,
        launch_s=launch * op.count,
        pcie_s=pcie * op.count,
        energy_J=energy * op.count,
        device_bytes=device_bytes * op.count,
        pcie_bytes=pcie_bytes * op.count,
        flops=op.flops * op.count,
    )


def cost(
    host: DeviceSpec,
    op: Op,
    target: Device | None = None,
    *,
    pim_devices: int = 1,
    elem_bytes: int = 2,
) -> OpCost:
    """Cost of ``op`` placed on ``target`` (None or the host: the GPU itself)."""
    if not isinstance(host, DeviceSpec):
        raise SimgpuError(f"placement host must be a GPU, got {getattr(host, 'kind', host)!r}")
    if target is None or target is host or op.kind == "elementwise":
        return replace(_gpu_cost(host, op, elem_bytes), placement=_label(target, host))
    if isinstance(target, DeviceSpec):
        return replace(_gpu_cost(target, op, elem_bytes), placement="gpu")
    if isinstance(target, PimSpec):
        r = simulate_gemv(target, op.M, op.K, devices=pim_devices)
        reps = op.N  # a GEMM runs as N GEMVs
        return _offload(
            host,
            target,
            op,
            _label(target, host),
            r.time_s * reps,
            r.energy_J * reps,
            r.internal_bytes * reps,
            target.pim.element_bytes,
        )
    if isinstance(target, DataflowSpec):
        best = min(
            (simulate_gemm(target, op.M, op.N, op.K, df) for df in ("os", "ws", "is")),
            key=lambda r: r.time_s,
        )
        return _offload(
            host,
            target,
            op,
            _label(target, host),
            best.time_s,
            best.energy_J,
            best.dram_read_bytes + best.dram_write_bytes,
            target.array.word_bytes,
        )
    raise SimgpuError(f"no placement model for device kind {target.kind!r} ({target.name})")


def _label(target: Device | None, host: DeviceSpec) -> str:
    if target is None or isinstance(target, DeviceSpec):
        return "gpu"
    return target.kind


def place(
    ops: list[Op], host: DeviceSpec, target: Device | None = None, **kwargs: Any
) -> pd.DataFrame:
    """One row per op: its cost on ``target`` (element-wise ops stay on the host GPU)."""
    rows = [cost(host, op, target, **kwargs).to_dict() for op in ops]
    frame = pd.DataFrame(rows)
    frame["target"] = host.name if target is None else target.name
    return frame


def _footprint(
    ops: list[Op], device: Device, *, pim_devices: int = 1, elem_bytes: int = 2
) -> tuple[float, float]:
    """(bytes of the matrix operands W of all ops in the device's element size, capacity)."""
    n_dev = 1
    if isinstance(device, PimSpec):
        elem, n_dev = device.pim.element_bytes, pim_devices
    elif isinstance(device, DataflowSpec):
        elem = device.array.word_bytes
    else:
        elem = elem_bytes
    dram = getattr(device, "dram", None)
    capacity = float(dram.size_GiB * 2**30 * n_dev) if dram is not None else math.inf
    weights = float(sum(op.M * op.K * op.count for op in ops if op.kind != "elementwise"))
    return weights * elem, capacity


def compare(
    ops: list[Op], host: DeviceSpec, targets: list[Device | None], **kwargs: Any
) -> pd.DataFrame:
    """One row per placement: time, energy, bytes moved and PCIe bytes of the whole workload,
    with speedup and energy ratio against the GPU alone (the first row), and whether the
    matrices fit the device's memory (``weights_fit``; the costs assume they are resident)."""
    summary = []
    for target in [None, *[t for t in targets if t is not None]]:
        frame = place(ops, host, target, **kwargs)
        weights, capacity = _footprint(ops, host if target is None else target, **kwargs)
        summary.append(
            {
                "placement": "gpu" if target is None else _label(target, host),
                "target": host.name if target is None else target.name,
                "weight_bytes": weights,
                "capacity_bytes": capacity,
                "weights_fit": weights <= capacity,
                "time_s": float(frame["time_s"].sum()),
                "device_time_s": float(frame["device_time_s"].sum()),
                "launch_s": float(frame["launch_s"].sum()),
                "pcie_s": float(frame["pcie_s"].sum()),
                "energy_J": float(frame["energy_J"].sum()),
                "device_bytes": float(frame["device_bytes"].sum()),
                "pcie_bytes": float(frame["pcie_bytes"].sum()),
                "flops": float(frame["flops"].sum()),
            }
        )
    out = pd.DataFrame(summary)
    gpu = out.iloc[0]
    out["speedup_vs_gpu"] = gpu["time_s"] / out["time_s"]
    out["energy_ratio_vs_gpu"] = gpu["energy_J"] / out["energy_J"]
    out["device_speedup_vs_gpu"] = gpu["device_time_s"] / out["device_time_s"].where(
        out["device_time_s"] > 0, math.nan
    )
    return out
