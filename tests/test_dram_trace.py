"""experiments/dram_trace.py: binary request traces replayed on one pseudo-channel, with the
counts that follow from the address mapping, and a one-line error for a trace it cannot take."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from simgpu import devices
from simgpu.sim.hbm import unloaded_read_tck

ROOT = Path(__file__).resolve().parents[1]


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("dram_trace", ROOT / "experiments" /
                                                  "dram_trace.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dram_trace"] = module
    spec.loader.exec_module(module)
    return module


dt = _module()
H100 = devices.get("h100-sxm")


def _trace(path: Path, addrs: np.ndarray, arrivals: np.ndarray | None = None,
           writes: np.ndarray | None = None) -> Path:
    rec = np.zeros((len(addrs), 2), dtype="<u8")
    rec[:, 0] = 0 if arrivals is None else arrivals
    rec[:, 1] = addrs.astype(np.uint64)
    if writes is not None:
        rec[writes, 1] |= np.uint64(1 << 63)
    rec.tofile(path)
    return path


def test_a_stream_opens_each_row_once(tmp_path: Path) -> None:
    """8,192 sequential 64-B reads, all at tick 0, no refresh: RoBaRaCoCh keeps 1 KiB in one
    row, so 512 ACTs, and every 32-B burst but the first of a row hits."""
    n = 8192
    got = dt.replay("h100-sxm", _trace(tmp_path / "s.bin", np.arange(n) * 64), refresh=False)
    rows = n * 64 // H100.dram.row_bytes
    assert got["activates"] == rows and got["refreshes"] == 0
    assert got["row_hit_rate"] == 1 - rows / (2 * n)
    assert got["reads"] == n and got["writes"] == 0
    # the data bus moves one 32-B burst per tCCD_S at best
    assert 0.8 * got["peak_GBps"] < got["bandwidth_GBps"] <= got["peak_GBps"]


def test_random_reads_and_writes(tmp_path: Path) -> None:
    """Uniform accesses over the channel, one third writes, with refresh: each access opens its
    own row (two bursts, one a hit), the writes are counted as written."""
    n = 6000
    rng = np.random.default_rng(3)
    addrs = rng.integers(0, dt.channel_bytes(H100.dram) // 64, n) * 64
    writes = rng.random(n) < 1 / 3
    got = dt.replay("h100-sxm", _trace(tmp_path / "m.bin", addrs, writes=writes))
    assert got["writes"] == int(writes.sum()) and got["reads"] == n - int(writes.sum())
    assert n <= got["activates"] <= 1.3 * n  # a write drain may close a row a read still wants
    assert 0.35 < got["row_hit_rate"] <= 0.5
    assert got["refreshes"] >= 1 and got["bandwidth_GBps"] < got["peak_GBps"]


def test_a_lone_read_waits_only_for_the_dram(tmp_path: Path) -> None:
    """Reads far apart: the queue latency is the unloaded latency of a closed bank (both halves
    of the access: the second follows the first tCCD_L later into the open row)."""
    t = H100.dram.timing
    n = 16
    arrivals = np.arange(n) * 10_000 + 7
    addrs = np.arange(n) * H100.dram.row_bytes  # one row of each bank: each bank closed
    got = dt.replay("h100-sxm", _trace(tmp_path / "l.bin", addrs, arrivals), refresh=False)
    want = unloaded_read_tck(t, 1, "closed") + t.tCCD_L / 2  # mean of the two halves
    assert got["read_latency_ns"] == pytest.approx(want * t.tCK_ns, rel=1e-9)
    assert got["read_latency_from_arrival_ns"] == got["read_latency_ns"]


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "no records"),
    (b"\0" * 24, "record 1 is cut after 8 bytes"),
    (np.array([[5, 0], [4, 64]], dtype="<u8").tobytes(), "record 1: arrival 4 tCK goes back"),
    (np.array([[0, 2**40]], dtype="<u8").tobytes(), "record 0: address 0x10000000000 is beyond"),
])
def test_a_bad_trace_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 data: bytes, expected: str) -> None:
    f = tmp_path / "bad.bin"
    f.write_bytes(data)
    assert dt.main(["--device", "h100-sxm", "--trace", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.bin" in err and expected in err, err


def test_per_bank_refresh_and_an_out_of_order_front_end(tmp_path: Path) -> None:
    """A saturating stream long enough for many refresh intervals: one bank refreshed at a time
    issues a REFpb per bank per tREFI (16 times the all-bank count); with 64-request queues and
    an out-of-order front end the other banks stream on meanwhile, so it moves more bytes per
    tCK than all-bank refresh, which stops the whole pseudo-channel for tRFC."""
    n = 60000
    f = _trace(tmp_path / "s.bin", np.arange(n) * 64)
    ab = dt.replay("h100-sxm", f, queue=64, in_order=False)
    pb = dt.replay("h100-sxm", f, refresh_mode="per_bank", queue=64, in_order=False)
    banks = H100.dram.bank_groups * H100.dram.banks_per_group
    assert ab["refreshes"] >= 10
    # a refresh is due every tREFI (all banks) or tREFI / banks (one bank)
    assert pb["refreshes"] == pytest.approx(banks * ab["refreshes"] * pb["sim_tck"]
                                            / ab["sim_tck"], rel=0.1)
    assert ab["bandwidth_GBps"] < pb["bandwidth_GBps"] <= pb["peak_GBps"]
    # the reference configuration (in-order front end, 32-request queues) is slower still
    ref = dt.replay("h100-sxm", f)
    assert ref["bandwidth_GBps"] < ab["bandwidth_GBps"]


def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _trace(tmp_path / "s.bin", np.arange(16) * 64)
    assert dt.main(["--device", "h100-sxm", "--trace", str(f), "--queue", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queue = 0, expected at least 1" in err, err
