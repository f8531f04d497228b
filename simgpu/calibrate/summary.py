"""A short table of a run's headline figures (what to compare with published numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simgpu.calibrate.dataset import RunDir


def headline(run: RunDir) -> list[tuple[str, str, str]]:
    """(figure, value, how) rows for the tables the run has."""
    out: list[tuple[str, str, str]] = []
    have = run.finished_tables()

    def add(name: str, value: Any, fmt: str, how: str) -> None:
        if value is not None and value == value:
            out.append((name, format(value, fmt), how))

    if "pchase" in have:
        p = run.read_table("pchase")
        for path, lo, hi, label in (
            ("ca", 2 << 10, 32 << 10, "L1 hit latency"),
            ("cg", 1 << 20, 8 << 20, "L2 hit latency (L2-only loads, 1-8 MiB)"),
            ("cg", 1 << 30, 8 << 30, "DRAM latency (1 GiB and more)"),
        ):
            sel = p[(p.path == path) & (p.footprint_B >= lo) & (p.footprint_B <= hi)]
            if len(sel):
                add(label + " [cycles]", sel.latency_cycles.median(), ".1f", f"pchase {path}")
                add(label + " [ns]", sel.latency_ns.median(), ".1f", f"pchase {path}")
        sh = p[p.path == "shared"]
        if len(sh):
            add("shared-memory latency [cycles]", sh.latency_cycles.median(), ".1f",
                "pchase shared")
    if "stream" in have:
        s = run.read_table("stream")
        big = s[s.array_B == s.array_B.max()]
        for op in ("read", "write", "copy", "triad"):
            sel = big[big.op == op]
            if len(sel):
                add(f"DRAM {op} bandwidth [GB/s]", sel.bandwidth_GBps.max(), ".0f",
                    f"stream, {int(sel.array_B.iloc[0]) >> 20} MiB arrays")
        small = s[(s.array_B <= 16 << 20) & (s.array_B >= 4 << 20) & (s.op == "read")]
        if len(small):
            add("L2-resident read bandwidth [GB/s]", small.bandwidth_GBps.max(), ".0f",
                "stream read, 4-16 MiB")
    if "shared" in have:
        sh = run.read_table("shared")
        one = sh[sh.conflict_ways == 1]
        add("shared-memory bandwidth [GB/s]", one.bandwidth_GBps.max(), ".0f", "no conflicts")
        add("shared-memory bytes/clk/SM", one.bytes_per_clk_per_SM.max(), ".1f", "no conflicts")
    if "cachebw" in have:
        cb = run.read_table("cachebw")
        for level in ("L1", "L2"):
            sel = cb[cb.level.str.upper() == level]
            if len(sel):
                best = sel.sort_values("bandwidth_GBps").iloc[-1]
                add(f"{level} read bandwidth [GB/s]", best.bandwidth_GBps, ".0f",
                    f"cachebw, {int(best.footprint_B) >> 10} KiB x {int(best.passes)} passes")
                add(f"{level} read bytes/clk/SM", best.bytes_per_clk_per_SM, ".1f", "cachebw")
    if "pcie" in have:
        pc = run.read_table("pcie")
        for d in ("h2d", "d2h", "bidir"):
            for h in ("pinned", "pageable"):
                sel = pc[(pc.direction == d) & (pc.host_memory == h)]
                if len(sel):
                    add(f"PCIe {d} {h} [GB/s]", sel.bandwidth_GBps.max(), ".1f", "largest copies")
    if "gemm" in have:
        g = run.read_table("gemm")
        for (kernel, dtype), grp in g.groupby(["kernel", "dtype"]):
            best = grp.sort_values("tflops").iloc[-1]
            add(f"GEMM {kernel} {dtype} best [TFLOP/s]", best.tflops, ".1f",
                f"{int(best.M)}x{int(best.N)}x{int(best.K)}")
        if g.power_W.notna().any():
            add("GEMM max power [W]", g.power_W.max(), ".0f", "NVML energy counter")
    if "launch" in have:
        la = run.read_table("launch")
        for _, r in la.iterrows():
            add(f"{r.metric} [{r.unit}]", r.value, ".2f", str(r.detail or ""))
    return out


def format_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))
    return "\n".join(lines)
