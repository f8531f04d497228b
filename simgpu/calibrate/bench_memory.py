"""Memory benchmarks: pointer chase, STREAM, shared-memory banks, PCIe copies, launch overhead."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from simgpu.calibrate.context import Context, log_spaced_sizes

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
LINE = 128  # bytes between chained words: one access per 128 B line


class PointerChase:
    """Latency versus footprint (L1, L2 near/far, DRAM, TLB reach), plus shared memory."""

    table = "pchase"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        hi = 4 * GiB if ctx.level == "full" else 1 * GiB
        per_octave = 4 if ctx.level == "full" else 2
        feet = log_spaced_sizes(1 * KiB, hi, per_octave, align=LINE)
        total = int(ctx.props["global_memory_B"])
        feet = [f for f in feet if f <= 0.3 * total]  # room for the permutation beside it
        pts: list[dict[str, Any]] = [
            {"path": p, "footprint_B": f} for p in ("ca", "cg") for f in feet
        ]
        pts += [{"path": "shared", "footprint_B": w * 4} for w in (32, 256, 1024, 4096)]
        return pts

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        if point["path"] == "shared":
            return [self._shared(ctx, point["footprint_B"])]
        foot = int(point["footprint_B"])
        n_lines = foot // LINE
        words_per_line = LINE // 4
        # one buffer for the largest footprint, reused (prefix) by every point
        need = foot // 4
        buf = ctx.scratch.get("pchase_buf")
        if buf is None or buf.size < need:
            ctx.free()
            largest = max(p["footprint_B"] for p in self.points(ctx) if p["path"] != "shared")
            buf = cp.empty(largest // 4, dtype=cp.uint32)
            ctx.scratch["pchase_buf"] = buf
        rs = cp.random.RandomState(ctx.seed + n_lines)
        perm = rs.permutation(n_lines).astype(cp.int64)
        nxt = cp.roll(perm, -1)
        buf[perm * words_per_line] = (nxt * words_per_line).astype(cp.uint32)
        del nxt
        starts = [int(perm[i * n_lines // 3]) * words_per_line for i in range(3)]
        del perm
        steps = 1 << 15
        big = foot > 4 * ctx.l2_bytes
        warm_steps = 4096 if big else min(max(n_lines, 4096), 1 << 21)
        fn = ctx.kernels.function("pchase.cu", f"pchase_{point['path']}")
        out_idx = cp.zeros(1, dtype=cp.uint32)
        out_cyc = cp.zeros(1, dtype=cp.int64)
        fn((1,), (1,), (buf, np.uint32(starts[0]), np.int32(warm_steps), out_idx, out_cyc))
        ctx.sync()
        cycles, ns = [], []
        start, end = cp.cuda.Event(), cp.cuda.Event()
        for s in starts:
            start.record()
            fn((1,), (1,), (buf, np.uint32(s), np.int32(steps), out_idx, out_cyc))
            end.record()
            end.synchronize()
            cycles.append(int(out_cyc.get()[0]) / steps)
            ns.append(cp.cuda.get_elapsed_time(start, end) * 1e6 / steps)
        # the chain must have been followed: the final index is a line start inside the footprint
        idx = int(out_idx.get()[0])
        if idx % words_per_line or idx >= need:
            raise RuntimeError(f"pointer chase ended on index {idx}: chain corrupt")
        sm_clock = ctx.power.clocks_MHz()[0] if ctx.power else None
        return [{
            "path": point["path"], "footprint_B": foot, "stride_B": LINE, "steps": steps,
            "latency_cycles": float(np.median(cycles)), "latency_cycles_min": float(min(cycles)),
            "latency_ns": float(np.median(ns)), "sm_clock_MHz": sm_clock, "launches": len(starts),
        }]

    def _shared(self, ctx: Context, foot: int) -> dict[str, Any]:
        cp = ctx.cp
        n = foot // 4
        perm = ctx.rng(n).permutation(n)
        chain = np.empty(n, dtype=np.uint32)
        chain[perm] = np.roll(perm, -1)
        d_chain = cp.asarray(chain)
        fn = ctx.kernels.function("pchase.cu", "pchase_shared")
        out_idx = cp.zeros(1, dtype=cp.uint32)
        out_cyc = cp.zeros(1, dtype=cp.int64)
        steps = 1 << 15
        cycles, ns = [], []
        start, end = cp.cuda.Event(), cp.cuda.Event()
        for _ in range(4):  # the first launch is a warm-up
            start.record()
            fn((1,), (128,), (d_chain, np.int32(n), np.int32(steps), out_idx, out_cyc),
               shared_mem=n * 4)
            end.record()
            end.synchronize()
            cycles.append(int(out_cyc.get()[0]) / steps)
            ns.append(cp.cuda.get_elapsed_time(start, end) * 1e6 / steps)
        cycles, ns = cycles[1:], ns[1:]
        expect = 0
        for _ in range(steps):  # the host follows the same chain
            expect = int(chain[expect])
        if int(out_idx.get()[0]) != expect:
            raise RuntimeError("shared-memory chase ended on the wrong index")
        return {
            "path": "shared", "footprint_B": foot, "stride_B": 4, "steps": steps,
            "latency_cycles": float(np.median(cycles)), "latency_cycles_min": float(min(cycles)),
            "latency_ns": float(np.median(ns)),
            "sm_clock_MHz": ctx.power.clocks_MHz()[0] if ctx.power else None,
            "launches": len(cycles),
        }


_STREAM_BYTES = {"read": 1, "write": 1, "copy": 2, "scale": 2, "triad": 3}


class Stream:
    """Bandwidth of read/write/copy/scale/triad versus array size (L2-resident to DRAM)."""

    table = "stream"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        if ctx.level == "full":
            sizes = [1 << k for k in range(20, 32)]  # 1 MiB .. 2 GiB per array
        else:
            sizes = [8 * MiB, 32 * MiB, 256 * MiB, 1 * GiB]
        pts: list[dict[str, Any]] = []
        for op in _STREAM_BYTES:
            for s in sizes:
                power = s == sizes[-1] or (s == 8 * MiB and op in ("read", "copy"))
                pts.append({"op": op, "array_B": s, "threads": 256, "blocks_per_sm": 8,
                            "power": power})
        if ctx.level == "full":  # occupancy sweep at the largest size (bandwidth vs parallelism)
            for threads in (64, 128, 256):
                for bps in (1, 2, 4):
                    pts.append({"op": "read", "array_B": sizes[-1], "threads": threads,
                                "blocks_per_sm": bps, "power": False})
        return pts

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        op, size = point["op"], int(point["array_B"])
        n4 = size // 16
        arrays = ctx.scratch.get("stream")
        if arrays is None or arrays[0].size < n4 * 4:
            ctx.free()
            largest = max(p["array_B"] for p in self.points(ctx))
            rs = cp.random.RandomState(ctx.seed)
            arrays = [rs.random_sample(largest // 4, dtype=cp.float32) + 0.5 for _ in range(3)]
            ctx.scratch["stream"] = arrays
        a, b, c = (x[: n4 * 4] for x in arrays)
        threads = int(point["threads"])
        blocks = min(ctx.sm_count * int(point["blocks_per_sm"]), max(1, math.ceil(n4 / threads)))
        out = cp.zeros(1, dtype=cp.float32)
        q = np.float32(0.5)
        n = np.uint64(n4)
        fn_k = ctx.kernels.function("stream.cu", f"stream_{op}")
        args: tuple[Any, ...]
        if op == "read":
            args = (a, n, np.float32(-1.0), out)
        elif op == "write":
            args = (c, n, np.float32(1.25))
        elif op == "copy":
            args = (a, c, n)
        elif op == "scale":
            args = (a, c, n, q)
        else:
            args = (c, a, b, n, q)

        def fn() -> None:
            fn_k((blocks,), (threads,), args)

        timing = ctx.time(fn)
        # check the result of the last call
        ok = True
        if op == "write":
            ok = bool(cp.all(c[:1024] == 1.25)) and bool(c[-1] == 1.25)
        elif op == "copy":
            ok = bool(cp.array_equal(c[-4096:], a[-4096:]))
        elif op == "scale":
            ok = bool(cp.allclose(c[-4096:], q * a[-4096:]))
        elif op == "triad":
            ok = bool(cp.allclose(c[-4096:], a[-4096:] + q * b[-4096:]))
        elif op == "read":
            ok = float(out.get()[0]) == 0.0  # the sum never equals the flag
        if not ok:
            raise RuntimeError(f"stream {op} at {size} B produced a wrong result")
        moved = _STREAM_BYTES[op] * size
        row: dict[str, Any] = {
            "op": op, "array_B": size, "bytes_moved": moved, "blocks": blocks,
            "threads_per_block": threads, **timing.columns(),
            "bandwidth_GBps": moved / (timing.median * 1e-3) / 1e9,
        }
        if point["power"]:
            row.update(ctx.measure_power(fn, timing.median))
        return [row]


class CacheBandwidth:
    """L1 and L2 read bandwidth, many passes per launch so that launch overhead vanishes."""

    table = "cachebw"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        l2 = [4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96]
        l1 = [4, 8, 16, 32, 48]
        if ctx.level != "full":
            l2, l1 = [8, 16, 32, 64], [8, 32]
        pts = [{"level": "L2", "size_B": s * MiB, "power": s == 16} for s in l2]
        pts += [{"level": "L1", "size_B": s * KiB, "power": s == 16} for s in l1]
        return pts

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        level, size = point["level"], int(point["size_B"])
        threads = 256
        out = cp.zeros(1, dtype=cp.float32)
        flag = np.float32(-1.0)
        if level == "L2":
            n4 = size // 16
            blocks = min(ctx.sm_count * 8, max(1, n4 // threads))
            passes = max(2, int(8e9 // size))
            per_block, footprint = 0, size
            a = cp.random.RandomState(ctx.seed).random_sample(n4 * 4, dtype=cp.float32)
            k = ctx.kernels.function("cache_bw.cu", "l2_read_passes")
            args: tuple[Any, ...] = (a, np.uint64(n4), np.int32(passes), flag, out)
        else:
            blocks = ctx.sm_count * 4  # four blocks per SM: 4 x size bytes per SM's L1
            n4 = size // 16
            per_block, footprint = size, size * blocks
            passes = max(2, int(16e9 // footprint))
            a = cp.random.RandomState(ctx.seed).random_sample(n4 * 4 * blocks,
                                                              dtype=cp.float32)
            k = ctx.kernels.function("cache_bw.cu", "l1_read_passes")
            args = (a, np.int32(n4), np.int32(passes), flag, out)

        def fn() -> None:
            k((blocks,), (threads,), args)

        timing = ctx.time(fn, min_reps=5, target_s=0.2)
        if float(out.get()[0]) != 0.0:
            raise RuntimeError("cache bandwidth kernel hit its flag: wrong sum")
        moved = footprint * passes
        bw = moved / (timing.median * 1e-3)
        clock = ctx.power.clocks_MHz()[0] if ctx.power else None
        row: dict[str, Any] = {
            "level": level, "footprint_B": footprint, "per_block_B": per_block, "passes": passes,
            "blocks": blocks, "threads_per_block": threads, "bytes_moved": moved,
            **timing.columns(), "bandwidth_GBps": bw / 1e9,
            "bytes_per_clk_per_SM": bw / (ctx.sm_count * clock * 1e6) if clock else None,
        }
        if point["power"]:
            row.update(ctx.measure_power(fn, timing.median))
        return [row]


class SharedBanks:
    """Shared-memory bandwidth per bank-conflict degree."""

    table = "shared"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        return [{"stride": s} for s in (1, 2, 3, 4, 8, 16, 17, 32)]

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        stride = int(point["stride"])
        threads, blocks = 256, ctx.sm_count * 8
        iters = 2048 if stride in (1, 3, 17) else max(64, 2048 // math.gcd(stride, 32))
        loads = iters * 8
        out = cp.zeros(1, dtype=cp.float32)
        k = ctx.kernels.function("shared.cu", "smem_stride")

        def fn() -> None:
            k((blocks,), (threads,), (np.int32(stride), np.int32(iters), np.float32(-1.0), out))

        timing = ctx.time(fn)
        if float(out.get()[0]) != 0.0:
            raise RuntimeError("shared-memory kernel hit its flag: wrong sum")
        useful = blocks * threads * loads * 4
        bw = useful / (timing.median * 1e-3)
        clock = ctx.power.clocks_MHz()[0] if ctx.power else None
        row: dict[str, Any] = {
            "stride_words": stride, "conflict_ways": math.gcd(stride, 32), "blocks": blocks,
            "threads_per_block": threads, "loads_per_thread": loads, **timing.columns(),
            "bandwidth_GBps": bw / 1e9,
            "bytes_per_clk_per_SM": bw / (ctx.sm_count * clock * 1e6) if clock else None,
        }
        if stride == 1:
            row.update(ctx.measure_power(fn, timing.median))
        return [row]


class PCIeCopies:
    """Host<->device copy bandwidth: pinned vs pageable, each direction, and both at once."""

    table = "pcie"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        if ctx.level == "full":
            sizes = [4 ** k * 4 * KiB for k in range(0, 9)] + [1 * GiB]  # 4 KiB .. 1 GiB
        else:
            sizes = [64 * KiB, 1 * MiB, 16 * MiB, 256 * MiB]
        pts = [{"direction": d, "host_memory": h, "size_B": s}
               for h in ("pinned", "pageable") for d in ("h2d", "d2h") for s in sizes]
        pts += [{"direction": "bidir", "host_memory": "pinned", "size_B": s}
                for s in sizes if s >= 1 * MiB]
        return pts

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        import cupyx  # CuPy is optional: imported only where a GPU is used

        size, direction, host = int(point["size_B"]), point["direction"], point["host_memory"]
        rt = cp.cuda.runtime
        src_all = ctx.scratch.get("pcie_src")
        if src_all is None:
            largest = max(p["size_B"] for p in self.points(ctx))
            src_all = ctx.rng(7).integers(0, 255, size=largest, dtype=np.uint8)
            ctx.scratch["pcie_src"] = src_all
        src = src_all[:size]
        if host == "pinned":
            h = cupyx.empty_pinned((size,), dtype=np.uint8)
            h[...] = src
            h2 = cupyx.empty_pinned((size,), dtype=np.uint8)
        else:
            h = src.copy()
            h2 = np.empty(size, dtype=np.uint8)
        d = cp.empty(size, dtype=cp.uint8)
        d2 = cp.asarray(src[::-1].copy())
        stream = cp.cuda.Stream(non_blocking=True)
        other = cp.cuda.Stream(non_blocking=True)
        h_ptr, h2_ptr = h.ctypes.data, h2.ctypes.data
        H2D, D2H = rt.memcpyHostToDevice, rt.memcpyDeviceToHost

        if host == "pinned" and direction == "bidir":
            def fn() -> None:
                ev = cp.cuda.Event(disable_timing=True)
                ev.record(stream)
                other.wait_event(ev)
                rt.memcpyAsync(d.data.ptr, h_ptr, size, H2D, stream.ptr)
                rt.memcpyAsync(h2_ptr, d2.data.ptr, size, D2H, other.ptr)
                done = cp.cuda.Event(disable_timing=True)
                done.record(other)
                stream.wait_event(done)
            use_stream: Any = stream
        elif host == "pinned":
            def fn() -> None:
                if direction == "h2d":
                    rt.memcpyAsync(d.data.ptr, h_ptr, size, H2D, stream.ptr)
                else:
                    rt.memcpyAsync(h2_ptr, d2.data.ptr, size, D2H, stream.ptr)
            use_stream = stream
        else:  # pageable: cudaMemcpy stages through a driver buffer and blocks the host
            def fn() -> None:
                if direction == "h2d":
                    rt.memcpy(d.data.ptr, h_ptr, size, H2D)
                else:
                    rt.memcpy(h2_ptr, d2.data.ptr, size, D2H)
            use_stream = None

        timing = ctx.time(fn, warmup=2, min_reps=5, max_reps=200, target_s=0.3,
                          stream=use_stream)
        walls = []
        for _ in range(min(timing.times_ms.size, 20)):
            ctx.sync()
            t0 = time.perf_counter()
            fn()
            (use_stream or cp.cuda.Stream.null).synchronize()
            ctx.sync()
            walls.append((time.perf_counter() - t0) * 1e6)
        ok = True
        if direction in ("h2d", "bidir"):
            ok &= bool(np.array_equal(cp.asnumpy(d), src))
        if direction in ("d2h", "bidir"):
            ok &= bool(np.array_equal(np.asarray(h2), src[::-1]))
        moved = size * (2 if direction == "bidir" else 1)
        return [{
            "direction": direction, "host_memory": host, "size_B": size, **timing.columns(),
            "bandwidth_GBps": moved / (timing.median * 1e-3) / 1e9,
            "wall_us": float(np.median(walls)), "check_ok": ok,
        }]


class LaunchAndIdle:
    """Empty-kernel launch overhead and idle board power (the power model's floor)."""

    table = "launch"

    def points(self, ctx: Context) -> list[dict[str, Any]]:
        return [{"what": "launch"}, {"what": "idle_power"}]

    def run(self, ctx: Context, point: dict[str, Any]) -> list[dict[str, Any]]:
        cp = ctx.cp
        if point["what"] == "idle_power":
            if ctx.power is None:
                return []
            ctx.sync()
            time.sleep(1.0)  # let the last kernel's power settle
            r = ctx.power.idle_power(2.0)
            rows = []
            for key in ("idle_power_W_counter", "idle_power_W_sampled"):
                if r[key] is not None:
                    rows.append({"metric": key, "value": r[key], "unit": "W",
                                 "detail": f"2 s with no kernels, {r['samples']} samples, "
                                           f"SM clock {r['sm_clock_MHz']} MHz"})
            return rows
        k = ctx.kernels.function("stream.cu", "empty_kernel")
        for _ in range(100):
            k((1,), (32,), ())
        ctx.sync()
        n = 5000
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(n):
            k((1,), (32,), ())
        end.record()
        end.synchronize()
        back_to_back = cp.cuda.get_elapsed_time(start, end) * 1e3 / n
        walls = []
        for _ in range(500):
            t0 = time.perf_counter()
            k((1,), (32,), ())
            ctx.sync()
            walls.append((time.perf_counter() - t0) * 1e6)
        single = cp.cuda.Event(), cp.cuda.Event()
        gpu_times = []
        for _ in range(200):
            single[0].record()
            k((1,), (32,), ())
            single[1].record()
            single[1].synchronize()
            gpu_times.append(cp.cuda.get_elapsed_time(*single) * 1e3)
        return [
            {"metric": "launch_back_to_back_us", "value": back_to_back, "unit": "us",
             "detail": f"{n} empty launches enqueued from Python, GPU time between events / n"},
            {"metric": "launch_sync_wall_us", "value": float(np.median(walls)), "unit": "us",
             "detail": "median host wall time of launch + synchronize (500 times)"},
            {"metric": "launch_event_us", "value": float(np.median(gpu_times)), "unit": "us",
             "detail": "median event-timed single empty launch (200 times)"},
        ]
