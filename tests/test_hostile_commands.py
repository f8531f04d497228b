"""Bad input to simulate, compare, sweep and the experiment runner: a one-line error naming the
value and what was expected, exit 2, promptly; never a traceback, a hang or a silent answer."""

from __future__ import annotations

import argparse

import pytest
from cli_errors import fails as _refused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgpu import devices
from simgpu.cli import build_parser, main
from simgpu.errors import SimgpuError
from simgpu.sim import replay
from simgpu.sweep.engine import check_grid_size, parse_sets
from simgpu.views.simulate import make_workload

H100 = devices.get("h100-sxm")


def fails(capsys, argv: list[str], *expected: str, within_s: float = 30.0) -> str:
    """A refusal, promptly (the hang class of bad input)."""
    return _refused(capsys, argv, *expected, within_s=within_s)


SIM = ["simulate", "--device", "h100-sxm", "--workload"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([*SIM, "gemm", "--kernel", "sgemm_regblock", "--m", "64", "--n", "64", "--k", "64",
          "--bm", "3", "--tm", "0"], ("TM = 0", "positive integer")),
        ([*SIM, "gemm", "--m", "1000000000000", "--n", "64", "--k", "64"],
         ("GiB", "h100-sxm has 80 GiB of device memory")),
        ([*SIM, "gemm", "--m", "2000000", "--n", "64", "--k", "64"],
         ("grid (4, 125000, 1)", "CUDA's limits")),
        ([*SIM, "gemm", "--m", "64", "--n", "64", "--k", "64", "--tile", "7"], ("tile = 7",)),
        ([*SIM, "gemm", "--m", "64", "--n", "64", "--k", "64", "--bm", "32"],
         ("--bm: not a parameter of sgemm_tiled",)),
        ([*SIM, "stream", "--footprint", "4096"], ("--footprint: not a parameter of stream",)),
        ([*SIM, "reduction", "--kernel", "sgemm_tiled"], ("--kernel picks a GEMM kernel",)),
        ([*SIM, "gemm", "--m", "64", "--n", "64"], ("needs --k",)),
        (["compare", "--m", "1000000000000", "--n", "64", "--k", "64", "--dtype", "fp32",
          "--kernel", "sgemm_tiled", "--view", "analytical"], ("of device memory",)),
        (["sweep", "--set", "M=abc"], ("M = 'abc': expected a whole number",)),
        (["sweep", "--set", "M=64.5"], ("M = 64.5",)),
        (["sweep", "--set", "M=64,128", "--set", "M=256"], ("M given twice",)),
        (["sweep", "--set", "M=" + ",".join(map(str, range(1, 1001))),
          "--set", "N=" + ",".join(map(str, range(1, 1001))),
          "--set", "K=" + ",".join(map(str, range(1, 101)))], ("100,000,000 points",)),
        (["sweep", "--set", "kernel=sgemm_tiled", "--set", "dtype=fp32", "--set", "tile=3"],
         ("tile 3 for sgemm_tiled",)),
        (["experiment", "run", "long_context_kv", "--set", "device=h100-sxm",
          "--set", "device=h200"], ("device given twice",)),
        # a device-override value the device cannot take is refused before any point runs
        (["sweep", "--set", "l2.size_MiB=50,-5"], ("l2.size_MiB: got -5",)),
        (["sweep", "--device", "h100-sxm", "--device", "a100-sxm-80gb",
          "--set", "hbm_bandwidth_GBps=0"], ("hbm_bandwidth_GBps = 0",)),
        (["sweep", "--set", "pcie_gen=9"], ("pcie_gen = 9", "[3, 4, 5, 6]")),
        (["experiment", "run", "long_context_kv", "--workers", "-2"],
         ("workers = -2: expected 0",)),
    ],
)
def test_bad_command_lines_fail_clearly(capsys, tmp_path, argv, expected) -> None:
    if argv[0] in ("sweep", "experiment"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    fails(capsys, argv, *expected)
    assert not (tmp_path / "out").exists()  # nothing written for a refused command


def test_an_output_folder_that_is_a_file(capsys, tmp_path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    for argv in (["sweep", "--workers", "0"], ["experiment", "run", "long_context_kv",
                                               "--workers", "0"]):
        fails(capsys, [*argv, "--out", str(f)], "exists and is not a folder")
        assert f.read_text() == "x"


def test_a_long_replay_reports_progress(capsys, monkeypatch) -> None:
    monkeypatch.setattr(replay, "PROGRESS_EVERY_S", 0.0)
    assert main([*SIM, "reduction", "--elements", "65536", "--json"]) == 0
    out = capsys.readouterr()
    assert "blocks replayed" in out.err and out.out.startswith("{")


def test_sweep_and_experiment_axes_are_parsed_alike() -> None:
    assert parse_sets(["M=1,2", "dtype=fp16"], lambda k, t: t) == {"M": ["1", "2"],
                                                                   "dtype": ["fp16"]}
    with pytest.raises(SimgpuError, match="more than 10"):
        check_grid_size({"a": list(range(4)), "b": list(range(3))}, limit=10)


def _sim_args(**kw: object) -> argparse.Namespace:
    args = build_parser().parse_args(["simulate", "--device", "h100-sxm", "--workload", "gemm"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


sizes = st.one_of(st.integers(min_value=-5, max_value=70_000), st.sampled_from([0, 2**31, 10**12]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=sizes, n=sizes, k=sizes, kernel=st.sampled_from(["sgemm_tiled", "sgemm_naive",
                                                          "sgemm_regblock"]),
       tile=st.one_of(st.none(), st.integers(-2, 40)),
       tm=st.one_of(st.none(), st.integers(-2, 9)))
def test_simulate_numbers_give_a_workload_or_a_clear_error(m, n, k, kernel, tile, tm) -> None:
    args = _sim_args(m=m, n=n, k=k, kernel=kernel, tile=tile, tm=tm)
    try:
        w = make_workload(args)
        w.check_fits(H100)
        launch = w.trace().launch  # what a replay starts from: a launch CUDA accepts
    except SimgpuError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert launch.num_blocks >= 1 and min(m, n, k) >= 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_set_option_is_an_axis_or_a_clear_error(items) -> None:
    try:
        grid = parse_sets(items, lambda k, t: t)
    except SimgpuError as exc:
        assert str(exc).startswith("--set ")
        return
    assert all(values for values in grid.values())
