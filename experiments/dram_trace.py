"""Replay a binary DRAM request trace on one pseudo-channel of a device's DRAM model.

The trace format is the one of the Ramulator 2 reference runs (shared data ``ramulator2/``,
its README): records of two little-endian uint64, the arrival time in command clocks (tCK) and
the byte address with bit 63 set for a write; each record is one 64-byte access. The replay
uses that comparison's controller configuration, so the figures line up with Ramulator 2's:

* one pseudo-channel's command and data buses, banks and timings (the device file's
  ``[dram.timing]``), all-bank refresh every tREFI whatever the device file's mode (the
  reference runs refresh all banks at once);
* addresses spanning one channel of the device (``size_GiB / channels``: 1 GiB on h100-sxm,
  65,536 rows of 16 banks x 1 KiB), mapped RoBaRaCoCh: row | bank | bank group | column, so a
  row's bytes are consecutive (``interleave_bytes`` = one row, no bank XOR);
* each 64-byte access sent as two 32-byte requests (one burst each) in arrival order by an
  in-order front end (an access whose queue is full holds back the ones behind it), into read
  and write queues of 32 requests, write drain between watermarks of 0.8 and 0.2, open-row
  policy, FR-FCFS: Ramulator 2's request size, queues and trace front end.

Printed (one JSON object with ``--json``, else one line per figure): ``bandwidth_GBps`` (bytes
moved over the time the last access completed), ``read_latency_ns`` (mean, from a read's entry
into the queue to its last data beat, per 32-byte request; Ramulator 2 counts per 64-byte
access, to the later half's last beat, a few tCK more; ``read_latency_from_arrival_ns`` counts
from the trace's arrival time, which includes the wait for a queue slot), ``row_hit_rate`` (per
32-byte burst: column commands that found their row open), and the replay's speed
(``accesses_per_cpu_s``).

Usage: ``python experiments/dram_trace.py --device h100-sxm --trace FILE [--json]
[--refresh-mode per_bank] [--queue N] [--out-of-order]`` (the last three leave the reference
configuration: one bank refreshed at a time, other queue sizes, any arrival admitted). A bad
trace (missing, not a multiple of 16 bytes, an address beyond the channel, arrivals going
backwards) is a one-line error naming the file, the record and the value (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from simgpu import devices
from simgpu.devices.spec import DramSpec
from simgpu.errors import SimgpuError
from simgpu.io import regular_file
from simgpu.sim.hbm import HBM, HBMConfig

#: bytes per trace record (two little-endian uint64) and per access
RECORD_BYTES = 16
ACCESS_BYTES = 64
#: the Ramulator 2 comparison's controller (ramulator2/README.md, "Configuration"): an access
#: is split into requests of 32 B (one HBM3 burst), queues of 32 requests, write watermarks
#: 0.8 / 0.2
REQUEST_BYTES = 32
QUEUE_REQUESTS = 32
WRITE_HIGH = 0.8
WRITE_LOW = 0.2
#: largest trace replayed: 2 GiB is 134 million accesses, hours of replay
MAX_TRACE_BYTES = 2 << 30
#: latest arrival accepted, tCK: 2^48 tCK is days of DRAM time on any device here, and keeps
#: every time exact in a float
MAX_ARRIVAL_TCK = 1 << 48
WRITE_BIT = np.uint64(1 << 63)
SPLIT = ACCESS_BYTES // REQUEST_BYTES
#: requests submitted ahead of the controller, and the feeder's polling period (tCK)
WINDOW = 4096
POLL_TCK = 512.0


class TraceError(SimgpuError):
    """A trace file that cannot be replayed (the message names the file and the record)."""


def one_pseudo_channel(dram: DramSpec) -> DramSpec:
    """The device's DRAM reduced to one pseudo-channel (the same burst, banks and timings)."""
    width = dram.channel_width_bits // dram.pseudo_channels_per_channel
    return dataclasses.replace(
        dram, packages=1, channels_per_package=1, channel_width_bits=width,
        pseudo_channels_per_channel=1, bus_width_bits=width,
        peak_bandwidth_GBps=width * dram.data_rate_Gbps / 8, measured_bandwidth_GBps=None,
    )


def channel_bytes(dram: DramSpec) -> int:
    """Capacity of one channel of the device, bytes: the address range a trace may use."""
    return int(dram.size_GiB * 2**30) // dram.channels


def read_trace(path: Path, limit_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival tCK, byte address, is write) of every record; TraceError naming the file, the
    record and the value where the trace is not one to replay."""
    size = regular_file(path, "trace file")
    if size > MAX_TRACE_BYTES:
        raise TraceError(f"{path}: {size} bytes, more than the {MAX_TRACE_BYTES >> 30} GiB a "
                         "trace may have")
    if size % RECORD_BYTES:
        raise TraceError(f"{path}: {size} bytes is not a multiple of {RECORD_BYTES} (record "
                         f"{size // RECORD_BYTES} is cut after {size % RECORD_BYTES} bytes)")
    if size == 0:
        raise TraceError(f"{path}: no records (an empty file), expected at least one")
    try:
        rec = np.fromfile(path, dtype="<u8").reshape(-1, 2)
    except (OSError, ValueError) as exc:
        raise TraceError(f"{path}: cannot read ({exc})") from None
    arrival, word = rec[:, 0], rec[:, 1]
    write = (word & WRITE_BIT) != 0
    addr = word & ~WRITE_BIT
    late = np.flatnonzero(arrival > MAX_ARRIVAL_TCK)
    if late.size:
        i = int(late[0])
        raise TraceError(f"{path}: record {i}: arrival {int(arrival[i])} tCK, expected at most "
                         f"{MAX_ARRIVAL_TCK}")
    back = np.flatnonzero(arrival[1:] < arrival[:-1])
    if back.size:
        i = int(back[0]) + 1
        raise TraceError(f"{path}: record {i}: arrival {int(arrival[i])} tCK goes backwards "
                         f"(record {i - 1} arrives at {int(arrival[i - 1])})")
    beyond = np.flatnonzero(addr > limit_bytes - ACCESS_BYTES)
    if beyond.size:
        i = int(beyond[0])
        raise TraceError(f"{path}: record {i}: address {int(addr[i]):#x} is beyond the channel "
                         f"({limit_bytes:#x} bytes; a {ACCESS_BYTES}-byte access must fit)")
    return arrival.astype(np.int64), addr.astype(np.int64), write


def replay(device: str, trace: Path, refresh: bool = True, refresh_mode: str = "all_bank",
           queue: int = QUEUE_REQUESTS, in_order: bool = True) -> dict[str, Any]:
    """Replay ``trace`` on one pseudo-channel of ``device``; the figures as a dict. The
    defaults are the reference configuration; ``refresh_mode`` (``all_bank``, ``per_bank``),
    ``queue`` (requests per read and write queue) and ``in_order`` (the front end) vary it."""
    if refresh_mode not in ("all_bank", "per_bank"):
        raise SimgpuError(f"refresh_mode {refresh_mode!r}, expected all_bank or per_bank")
    if queue < 1:
        raise SimgpuError(f"queue = {queue}, expected at least 1 request")
    spec = devices.get(device)
    dram = one_pseudo_channel(spec.dram)
    arrival, addr, write = read_trace(trace, channel_bytes(spec.dram))
    t = dram.timing
    env = simpy.Environment()
    cfg = HBMConfig(read_queue=queue, write_queue=queue,
                    write_high=WRITE_HIGH, write_low=WRITE_LOW, refresh=refresh,
                    interleave_bytes=dram.row_bytes, bank_xor=False, in_order=in_order,
                    refresh_mode=refresh_mode)
    hbm = HBM(env, dram, 1e6 / t.tCK_ps, cfg)  # one time unit of env = one tCK
    n = len(arrival)
    arr_l, addr_l, wr_l = arrival.tolist(), addr.tolist(), write.tolist()
    submit = hbm.submit
    gc.collect()
    gc.freeze()  # a million live requests: the collector would rescan them over and over
    c0 = time.process_time()
    # requests are submitted a window ahead (at most WINDOW not yet queued), so a trace of
    # millions of accesses holds only thousands of them in memory
    def feed() -> Any:
        i = 0
        while i < n:
            room = WINDOW - hbm.waiting()
            if room > 0:
                now = env.now
                end = min(n, i + max(1, room // SPLIT))
                for k in range(i, end):
                    a, w, d = addr_l[k], wr_l[k], arr_l[k] - now
                    for part in range(0, ACCESS_BYTES, REQUEST_BYTES):
                        submit(a + part, REQUEST_BYTES, w, d)
                i = end
            if i < n:
                # the backlog can halve no sooner than the arrival of the record WINDOW / 2
                # back; at saturation it drains by a few hundred accesses per 1,000 tCK
                yield env.timeout(max(POLL_TCK, arr_l[i - WINDOW // 2] - env.now))

    env.process(feed())
    env.run()
    cpu = time.process_time() - c0
    gc.unfreeze()
    tot = hbm.totals()
    reads, bursts = tot["reads"], tot["busy_bursts"]
    requests = tot["reads"] + tot["writes"]
    span = tot["last_data_tck"]
    tck_ns = t.tCK_ns
    return {
        "device": spec.name,
        "trace": trace.name,
        "accesses": n,
        "reads": int(reads) // SPLIT,  # accesses (each is SPLIT requests)
        "writes": int(tot["writes"]) // SPLIT,
        "bandwidth_GBps": tot["bytes"] / (span * tck_ns) if span else 0.0,
        "read_latency_ns": tot["read_queue_latency"] / reads * tck_ns if reads else None,
        "read_latency_from_arrival_ns": tot["read_latency"] / reads * tck_ns if reads else None,
        # the first burst of a request hits when no ACT was issued for it; the others follow
        # it into the open row
        "row_hit_rate": (tot["row_hits"] + bursts - requests) / bursts if bursts else None,
        "activates": int(tot["acts"]),
        "refreshes": int(tot["refreshes"]),
        "sim_tck": span,
        "tCK_ns": tck_ns,
        "peak_GBps": dram.peak_bandwidth_GBps,
        "cpu_s": cpu,
        "accesses_per_cpu_s": n / cpu if cpu > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", required=True, help="device name (simgpu devices list)")
    parser.add_argument("--trace", required=True, type=Path, help="binary request trace")
    parser.add_argument("--no-refresh", action="store_true", help="replay without refresh")
    parser.add_argument("--refresh-mode", choices=("all_bank", "per_bank"), default="all_bank",
                        help="refresh all banks at once (the reference runs; default) or one "
                             "bank at a time (the device file's timings)")
    parser.add_argument("--queue", type=int, default=QUEUE_REQUESTS, metavar="N",
                        help=f"requests per read and per write queue (default {QUEUE_REQUESTS})")
    parser.add_argument("--out-of-order", action="store_true",
                        help="admit any arrival whose queue has room (default: in arrival order,"
                             " as the reference runs' trace front end)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        out = replay(args.device, args.trace, refresh=not args.no_refresh,
                     refresh_mode=args.refresh_mode, queue=args.queue,
                     in_order=not args.out_of_order)
    except SimgpuError as exc:
        print(f"dram_trace: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
