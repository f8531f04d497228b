"""A transformer decode step (one new token per sequence) in closed form, for the studies.

Per layer the step runs four weight GEMMs with M = batch (QKV projection, attention output,
MLP up+gate, MLP down; :func:`simgpu.analytical.gemm`, cuBLAS, fp16, tiles of
:func:`skinny_tiles`, K split by :func:`split_k`) and attention over the KV
cache of every sequence (:func:`simgpu.analytical.roofline`: 4 x context x q_heads x head_dim
FLOPs per sequence and layer, and the KV bytes from the level that holds them). The LM head is
one more GEMM. Where things live:

* weights: in device memory as far as they fit, the rest in pinned host memory, copied over the
  host link every step (:func:`simgpu.analytical.pcie_copy`);
* KV cache: in L2 while it fits in the persisting set-aside (:data:`L2_PERSIST_FRACTION`), else
  in device memory while weights + KV fit, else the overflow in host memory, read over the host
  link every step.

assumption: host-link transfers overlap the GPU's work layer by layer (prefetch the next layer's
weights and KV while computing this one), so the step takes max(GPU time, link time); the
``bound`` is whichever of compute, DRAM, L2, PCIe or launch overhead takes the longest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simgpu import analytical
from simgpu.errors import SimgpuError

#: assumption: the share of L2 that a runtime can set aside for persisting accesses (CUDA C++
#: Programming Guide, "L2 cache set-aside for persisting accesses": A100 allows 30 MB of its
#: 40 MB, 75%); taken to hold for every device here.
L2_PERSIST_FRACTION = 0.75
#: assumption: device memory kept free for activations, workspace and the CUDA context.
RESERVED_GiB = 2.0
BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class Model:
    """A decoder-only transformer's shape (from its published config.json)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def params(self) -> float:
        """Weights (embeddings once, LM head separately), no biases or norms."""
        d, kv = self.hidden, self.kv_heads * self.head_dim
        per_layer = d * (d + 2 * kv) + d * d + 3 * d * self.ffn
        return float(self.layers * per_layer + 2 * self.vocab * d)

    def kv_bytes_per_token(self, dtype: str = "fp16") -> float:
        return 2.0 * self.layers * self.kv_heads * self.head_dim * BYTES[dtype]


MODELS = {
    # huggingface.co/meta-llama/Llama-2-7b-hf config.json: hidden_size 4096, intermediate 11008,
    # 32 layers, 32 heads (no GQA), vocab 32000
    "llama2-7b": Model("llama2-7b", 32, 4096, 32, 32, 11008, 32000),
    # huggingface.co/meta-llama/Llama-2-70b-hf config.json: hidden 8192, intermediate 28672,
    # 80 layers, 64 heads, 8 KV heads, vocab 32000
    "llama2-70b": Model("llama2-70b", 80, 8192, 64, 8, 28672, 32000),
    # huggingface.co/meta-llama/Meta-Llama-3-8B config.json: hidden 4096, intermediate 14336,
    # 32 layers, 32 heads, 8 KV heads, vocab 128256
    "llama3-8b": Model("llama3-8b", 32, 4096, 32, 8, 14336, 128256),
    # huggingface.co/01-ai/Yi-34B-200K config.json: hidden 7168, intermediate 20480, 60 layers,
    # 56 heads, 8 KV heads, vocab 64000 (the 34B model of Fu, "Challenges in Deploying
    # Long-Context Transformers", arXiv:2405.08944)
    "yi-34b": Model("yi-34b", 60, 7168, 56, 8, 20480, 64000),
}


def skinny_tiles(batch: int) -> dict[str, int]:
    """Block tiles of the weight GEMMs, whose M is the batch.

    The analytical model's library search pads M to its 128-row tiles, as if a batch of one
    cost 128 rows of tensor-core work. assumption: like cuBLAS's small-M kernels, the tile's M
    is the batch rounded up to the 16-row granule of a tensor-core MMA (PTX ISA, mma.sync
    m16n8k16), at most 128; N x K tiles of 128 x 64 as the model's library tiles.
    """
    tm = 16
    while tm < min(batch, 128):
        tm *= 2
    return {"tile_m": tm, "tile_n": 128, "tile_k": 64}


def split_k(spec: Any, M: Any, N: Any, K: Any, tiles: dict[str, int]) -> Any:
    """K splits that give every SM a block when the output tiles alone cannot.

    assumption: like cuBLAS's split-K / stream-K kernels for skinny GEMMs, the K dimension is
    split until the blocks fill the SMs once (at most one tile_k per split); without it a
    4096 x 4096 projection of one token keeps 32 of 132 H100 SMs busy.
    """
    m, n, k = (np.asarray(x, dtype=float) for x in (M, N, K))
    tiles_out = np.ceil(m / tiles["tile_m"]) * np.ceil(n / tiles["tile_n"])
    want = np.ceil(spec.compute.sm_count / tiles_out)
    return np.maximum(1, np.minimum(np.floor(k / tiles["tile_k"]), want)).astype(int)


def decode_step(spec: Any, model: str | Model, batch: int, context: int,
                dtype: str = "fp16") -> dict[str, Any]:
    """Time, bound and placement of one decode step (all sequences at ``context`` tokens)."""
    m = MODELS[model] if isinstance(model, str) else model
    if batch < 1 or context < 1:
        raise SimgpuError(f"decode_step: batch = {batch}, context = {context}; expected >= 1")
    if dtype not in BYTES:
        raise SimgpuError(f"decode_step: dtype {dtype!r}, expected one of {list(BYTES)}")
    b = BYTES[dtype]
    d, kv = m.hidden, m.kv_heads * m.head_dim
    # -- weight GEMMs (M = batch): per layer, then the LM head
    shapes = [(batch, d + 2 * kv, d), (batch, d, d), (batch, 2 * m.ffn, d), (batch, d, m.ffn)]
    tiles = skinny_tiles(batch)
    Ms, Ns, Ks = ([s[i] for s in shapes] for i in range(3))
    per = analytical.gemm(spec, Ms, Ns, Ks, dtype, split_k=split_k(spec, Ms, Ns, Ks, tiles),
                          **tiles)
    head = analytical.gemm(spec, batch, m.vocab, d, dtype,
                           split_k=split_k(spec, batch, m.vocab, d, tiles), **tiles).iloc[0]
    t_gemm = m.layers * float(per["time_s"].sum()) + float(head["time_s"])
    e_gemm = m.layers * float(per["energy_J"].sum()) + float(head["energy_J"])
    bound_time: dict[str, float] = {}
    for _, r in per.iterrows():
        bound_time[str(r["bound"])] = bound_time.get(str(r["bound"]), 0.0) + m.layers * float(
            r["time_s"])
    bound_time[str(head["bound"])] = bound_time.get(str(head["bound"]), 0.0) + float(
        head["time_s"])
    # -- placement
    weights_B = m.params * b
    kv_B = m.kv_bytes_per_token(dtype) * context * batch
    hbm_B = spec.dram.size_GiB * 2**30 - RESERVED_GiB * 2**30
    l2_B = spec.l2.size_MiB * 2**20 * L2_PERSIST_FRACTION
    w_dev = min(weights_B, hbm_B)
    w_host = weights_B - w_dev
    if kv_B <= l2_B and w_host == 0:
        kv_level, kv_dev, kv_host = "L2", kv_B, 0.0
    else:
        kv_dev = max(0.0, min(kv_B, hbm_B - w_dev))
        kv_host = kv_B - kv_dev
        kv_level = "DRAM" if kv_host == 0 else ("host" if kv_dev == 0 else "DRAM+host")
    # -- attention over the KV cache
    attn_flops = 4.0 * context * m.heads * m.head_dim * m.layers * batch
    on_dev = kv_dev if kv_level != "L2" else 0.0
    roof = analytical.roofline(spec, attn_flops, on_dev, dtype,
                               l2_bytes=kv_B if kv_level == "L2" else kv_dev).iloc[0]
    t_attn = float(roof["time_s"])
    bound_time[str(roof["bound"])] = bound_time.get(str(roof["bound"]), 0.0) + t_attn
    t_gpu = t_gemm + t_attn
    # -- host link: offloaded weights and spilled KV, every step
    host_B = w_host + kv_host
    t_link = 0.0
    if host_B > 0:
        t_link = float(analytical.pcie_copy(spec, host_B, "h2d", True)["time_s"].iloc[0])
    time_s = max(t_gpu, t_link)
    bound = "pcie" if t_link > t_gpu else max(bound_time, key=lambda k: bound_time[k])
    return {
        "time_s": time_s,
        "tokens_per_s": batch / time_s,
        "bound": bound,
        "t_gemm_s": t_gemm,
        "t_attention_s": t_attn,
        "t_link_s": t_link,
        "gemm_energy_J": e_gemm,
        "weights_GB": weights_B / 1e9,
        "weights_host_GB": w_host / 1e9,
        "kv_GB": kv_B / 1e9,
        "kv_host_GB": kv_host / 1e9,
        "kv_level": kv_level,
    }
