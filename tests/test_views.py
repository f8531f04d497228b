"""The kernel catalogue and the view protocol: one entry per kernel that every command can use,
and one way to ask a view, which answers or says why it cannot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import simgpu.workloads as wl
from simgpu import analytical, catalogue, devices
from simgpu.calibrate.runner import BENCHMARKS
from simgpu.errors import SimgpuError, ViewUnavailable
from simgpu.views import protocol
from simgpu.views.estimate import Estimate

ROOT = Path(__file__).resolve().parents[1]
CAL = ROOT / "calibration"
H100 = devices.get("h100-sxm")

#: one small workload of every catalogue kernel that has a workload class
SMALL = {
    "cublas": wl.LibraryGemm(256, 256, 256, "bf16"),
    "mma_gemm": wl.MmaGemm(256, 256, 256, "bf16"),
    "sgemm_naive": wl.NaiveGemm(64, 64, 64),
    "sgemm_tiled": wl.TiledGemm(64, 64, 64, tile=16),
    "sgemm_regblock": wl.RegBlockGemm(128, 128, 64),
    "sgemv_warp": wl.Gemv(256, 256),
    "reduce_sum": wl.Reduction(1 << 14),
    "transpose_naive": wl.Transpose(64, 64, "naive"),
    "transpose_tiled": wl.Transpose(64, 64, "tiled"),
    **{f"stream_{op}": wl.Stream(op, 1 << 12) for op in ("read", "write", "copy", "scale",
                                                         "triad")},
    "pchase_ca": wl.PointerChase(1 << 14, steps=64),
    "pchase_cg": wl.PointerChase(1 << 14, steps=64, cache_op="cg"),
    "memcpy": wl.HostCopy(1 << 16),
}


@pytest.mark.parametrize("entry", catalogue.KERNELS.values(), ids=lambda k: k.name)
def test_every_entry_points_at_what_exists(entry: catalogue.Kernel) -> None:
    if entry.source is not None:
        text = (ROOT / "kernels" / entry.source).read_text()
        for dtype in entry.dtypes:  # one function per type where it runs several
            assert f"void {entry.function_for(dtype)}(" in text
    if entry.workload is not None:
        assert entry.name in SMALL and type(SMALL[entry.name]).__name__ == entry.workload
        assert SMALL[entry.name].kernel == entry.name
    if entry.table is not None:
        assert entry.table in BENCHMARKS
    assert entry.views <= set(catalogue.VIEWS)
    if entry.kind == "gemm":
        assert entry.family in catalogue.FAMILIES
    cls = getattr(wl, entry.workload) if entry.workload else None
    for v in entry.variants:  # a variant's parameters build the workload it names
        assert cls is not None
        made = cls(64, 64, 64, **v.params)
        assert made.tiles() == v.analytical_tiles()
        assert made.calibration_point()["variant"] == v.name


def test_lookups_fail_clearly() -> None:
    with pytest.raises(SimgpuError, match="unknown kernel 'sgemm_fast'; known: cublas"):
        catalogue.get("sgemm_fast")
    with pytest.raises(SimgpuError, match=r"tile 12 for sgemm_tiled: expected one of \[8, 16"):
        catalogue.get("sgemm_tiled").variant(12)
    assert catalogue.get("sgemm_tiled").variant().name == "tile16"
    assert catalogue.family_of("cutlass") == "regblock"
    with pytest.raises(SimgpuError, match="not a GEMM"):
        catalogue.family_of("reduce_sum")


@pytest.mark.parametrize("name", SMALL)
def test_each_view_answers_or_says_why(name: str) -> None:
    w = SMALL[name]
    entry = catalogue.get(name)
    for view in ("analytical", "simulated"):
        if view in entry.views and not (view == "analytical" and name == "pchase_cg"):
            e = protocol.estimate(view, w, H100)
            assert isinstance(e, Estimate) and e.view == view
            assert e.time_s is not None and e.time_s > 0 and e.note
        else:
            with pytest.raises(ViewUnavailable) as err:
                protocol.estimate(view, w, H100)
            assert str(err.value)
    if "learned" not in entry.views:
        with pytest.raises(ViewUnavailable, match="learned view"):
            protocol.estimate("learned", w, H100)


def test_the_measured_view_is_the_calibration_row() -> None:
    e = protocol.estimate("measured", wl.TiledGemm(1024, 1024, 1024, tile=32), H100, root=CAL)
    row = e.detail
    assert (row["kernel"], row["tile_m"], row["M"]) == ("sgemm_tiled", 32, 1024)
    assert e.time_s == pytest.approx(row["time_ms"] * 1e-3)
    assert e.figures["source"]["run"] in e.note
    chase = protocol.estimate("measured", wl.PointerChase(1 << 20), H100, root=CAL)
    assert chase.get("latency_ns") == pytest.approx(chase.detail["latency_ns"])
    with pytest.raises(ViewUnavailable, match="nearest measured sgemm_tiled fp32: 1024x1024x1024"):
        protocol.estimate("measured", wl.TiledGemm(1000, 1024, 1024, tile=32), H100, root=CAL)
    with pytest.raises(ViewUnavailable, match="no calibration run"):
        protocol.estimate("measured", wl.TiledGemm(64, 64, 64), devices.get("rtx-4090"),
                          root=CAL)


def test_many_answers_keep_their_places() -> None:
    ws = [SMALL["pchase_cg"], SMALL["pchase_ca"], SMALL["sgemv_warp"]]
    out = protocol.estimate_many("analytical", ws, H100)
    assert isinstance(out[0], ViewUnavailable) and "L1-cached" in str(out[0])
    assert isinstance(out[1], Estimate) and out[1].get("latency_ns") is not None
    assert isinstance(out[2], Estimate) and out[2].time_s == pytest.approx(
        float(analytical.gemv(H100, 256, 256)["time_s"].iloc[0]))


def test_a_bug_in_a_view_is_not_reported_as_unavailable(monkeypatch) -> None:
    def broken(self, spec):  # a bug, not a missing model
        raise TypeError("unsupported operand")

    monkeypatch.setattr(wl.Gemv, "estimate", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        protocol.estimate("analytical", wl.Gemv(64, 64), H100)
    with pytest.raises(SimgpuError, match="view 'guessed'"):
        protocol.estimate("guessed", wl.Gemv(64, 64), H100)


def test_rows_round_trip_through_their_workloads() -> None:
    for name, w in SMALL.items():
        if name == "cublas":
            continue
        row = {**w.row_key(), "steps": 64, "threads_per_block": 256, "blocks": 8}
        again = type(w).from_row(row)
        assert again.row_key() == w.row_key() or name.startswith("stream")
        assert again.kernel == w.kernel
    lib = wl.GemmBase.from_row({"kernel": "cublas", "dtype": "fp16", "M": 8, "N": 8, "K": 8,
                                "tile_m": 0})
    assert isinstance(lib, wl.LibraryGemm) and lib.dtype == "fp16"
    assert dataclasses.replace(lib, dtype="bf16").dtype == "bf16"
