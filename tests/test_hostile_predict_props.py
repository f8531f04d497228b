"""Property tests of the predictor's input surfaces: its dataset reader over arbitrary CSV text
and bytes, its cache reader over arbitrary files, and the number options of ``simgpu predict``.
Each input gives a clean SimgpuError with a one-line message, or a correct answer; never another
exception. No forest is trained inside a hypothesis loop: the options' handlers run with the
long work replaced by stubs that check what reaches them."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simgpu import devices
from simgpu.cli import main
from simgpu.errors import SimgpuError
from simgpu.predict import cache, datasets, evaluate, features, model
from simgpu.predict import cli as pcli

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
H100 = devices.get("h100-sxm")

#: Column names a dataset file may bring: the schema's, the published adapters' triggers, and
#: others.
COLUMNS = [*datasets.REQUIRED, "kernel", "tile_m", "tile_n", "threads_per_block", "split_k",
           "power_W", "param_x", "dev_sm_count", "time_ms", "runtime_ms", "blocksize1",
           "layout_arg", "beta", "MWG", "Latency", "Kernel Name", "extra", ""]
CELLS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["h100-sxm", "fp16", "fp32", "cublas", "sgemm_tiled", "64", "1e-5", "",
                     "nan", "inf", "-0", "1e400", "0x10", " 64 "]),
    st.text(max_size=8),
)


def _one_line(exc: SimgpuError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text


def _check_frame(df: pd.DataFrame) -> None:
    """What load() promises of a frame it returns: the schema, in range."""
    assert len(df) > 0
    for c in datasets.REQUIRED:
        assert c in df.columns
    for c in ("M", "N", "K"):
        assert df[c].between(1, datasets.MAX_INT).all()
    t = df["time_s"].to_numpy(float)
    assert np.isfinite(t).all() and (t > 0).all()


#: Values each column usually holds (valid, or at the edge), besides any cell at all.
LIKELY: dict[str, Any] = {
    "device": st.sampled_from(["h100-sxm", "a100-pcie-40gb", "rtx-4070", "mystery-gpu"]),
    "dtype": st.sampled_from(["fp32", "tf32", "fp16", "bf16", "fp8"]),
    "M": st.integers(1, 2**17).map(str), "N": st.integers(1, 2**17).map(str),
    "K": st.integers(1, 2**17).map(str),
    "time_s": st.floats(1e-7, 10.0).map(repr),
    "kernel": st.sampled_from(["cublas", "sgemm_tiled", "sgemm_regblock", "sgemm_naive",
                               "cutlass", "clblast", "other", ""]),
    "tile_m": st.sampled_from(["0", "8", "16", "32", "64", "128", "256", "4096", ""]),
    "tile_n": st.sampled_from(["0", "16", "64", "128", "1000000", ""]),
    "threads_per_block": st.sampled_from(["0", "32", "256", "1024", "2048", ""]),
    "split_k": st.sampled_from(["0", "1", "2", "16", "100000", ""]),
    "power_W": st.sampled_from(["", "300", "0", "-1", "nan"]),
    "param_x": st.sampled_from(["", "0", "3", "1e300"]),
    "dev_sm_count": st.sampled_from(["", "80", "0.5", "1e9"]),
}


@st.composite
def csv_texts(draw: Any) -> str:
    extra = draw(st.lists(st.sampled_from(COLUMNS), max_size=4, unique=True))
    header = list(dict.fromkeys([*datasets.REQUIRED, *extra])) if draw(
        st.integers(0, 9)) else extra or ["M"]
    header = draw(st.permutations(header))
    n = draw(st.integers(0, 6))
    rows = [[draw(LIKELY[c] if c in LIKELY and draw(st.integers(0, 15)) else CELLS)
             for c in header] for _ in range(n)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writerow(header)
    w.writerows(rows)
    text = buf.getvalue()
    cut = draw(st.integers(min_value=0, max_value=len(text)))  # a torn tail, sometimes
    return text if draw(st.integers(0, 3)) else text[:cut]


def _load(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "d.csv"
    f.write_bytes(data)
    try:
        df = datasets.load(f)
    except SimgpuError as exc:
        _one_line(exc)
        assert "d.csv" in str(exc)
        return
    _check_frame(df)
    try:  # a frame that loads gives features, or says why not
        X, _ = features.build(df)
    except SimgpuError as exc:
        _one_line(exc)
        return
    assert np.isfinite(X.to_numpy(float)).all()


@FAST
@given(text=csv_texts())
def test_any_csv_text_loads_or_fails_cleanly(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text.encode("utf-8"))


@FAST
@given(data=st.binary(max_size=400))
def test_any_bytes_load_or_fail_cleanly(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path, data)


@FAST
@given(rows=st.lists(st.fixed_dictionaries({
    "M": st.integers(1, 2**20), "N": st.integers(1, 2**20), "K": st.integers(1, 2**20),
    "dtype": st.sampled_from(["fp32", "fp16", "bf16", "tf32"]),
    "kernel": st.sampled_from(["cublas", "sgemm_tiled", "sgemm_regblock", "cutlass", "other"]),
    "tile_m": st.sampled_from([0, 16, 64, 128, 4096, 2**30]),
    "threads_per_block": st.sampled_from([0, 64, 256, 1024, 5000]),
}), min_size=1, max_size=5), cut=st.integers(0, 40))
def test_a_torn_file_is_refused_or_read_whole(tmp_path: Path, rows: list[dict[str, Any]],
                                              cut: int) -> None:
    """A valid file cut anywhere in its last line: refused naming that line, or read with
    every row whole (a cut that leaves a complete-looking last line is the only way through)."""
    df = pd.DataFrame(rows).assign(device="h100-sxm", time_s=1e-4)
    text = df.to_csv(index=False)
    torn = text[: len(text) - 1 - cut] if cut < len(text.splitlines()[-1]) else text
    f = tmp_path / "t.csv"
    f.write_text(torn)
    try:
        got = datasets.load(f)
    except SimgpuError as exc:
        _one_line(exc)
        assert "t.csv" in str(exc) and "line" in str(exc)
        return
    _check_frame(got)
    assert len(got) in (len(df), len(df) - 1) or torn == text


@FAST
@given(data=st.binary(max_size=300), as_zip=st.booleans())
def test_any_cache_file_reads_or_is_refused(tmp_path: Path, data: bytes, as_zip: bool) -> None:
    f = tmp_path / ("a" * 24 + ".npz")
    if as_zip:
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr("meta.json", data)
            zf.writestr("lo.npy", data[::-1])
    else:
        f.write_bytes(data)
    with pytest.raises(cache.CacheFileError):
        cache.read(f)


# --- number options -----------------------------------------------------------------------------

INTS = st.one_of(st.integers(-5, 5000), st.integers(-(2**70), 2**70),
                 st.sampled_from([0, 1, 2, 3, 7, 8, 16, 32, 64, 96, 128, 256, 1024, 2**31 - 1,
                                  2**31, 2**32]))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit status and standard output of a command; a failure must be one clean line."""
    rc = main(argv)
    out, err = capsys.readouterr()
    if rc:
        assert rc == 2
        assert err.startswith("simgpu: error: ") and err.count("\n") == 1, err
    return rc, out


@pytest.fixture
def stub_forest(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """predict gemm with the forest replaced by a stub that checks its input."""
    seen: list[Any] = []

    def predict_gemm(spec: Any, params: dict[str, Any], **kw: Any) -> pd.DataFrame:
        frame = datasets.validate(pd.DataFrame({k: [v] for k, v in params.items()}).assign(
            device=spec.name, time_s=1.0), "stub")
        seen.append(frame)
        return pd.DataFrame({"time_s": [1e-3], "time_s_spread": [0.0], "power_W": [300.0],
                             "power_W_spread": [0.0], "energy_J": [0.3],
                             "power_source": ["learned"], "extrapolated": [False],
                             "basis": ["zero-shot: a stub"]})

    monkeypatch.setattr("simgpu.predict.predict_gemm", predict_gemm)
    return seen


@FAST
@given(m=INTS, n=INTS, k=INTS, kernel=st.sampled_from(["cublas", "sgemm_tiled",
                                                       "sgemm_regblock", "sgemm_naive",
                                                       "cutlass", "clblast"]),
       dtype=st.sampled_from(["fp32", "fp16"]),
       tiles=st.lists(INTS, min_size=6, max_size=6), split_k=INTS, given_=st.integers(0, 63))
def test_predict_gemm_numbers(capsys: pytest.CaptureFixture[str], stub_forest: list[Any],
                              m: int, n: int, k: int, kernel: str, dtype: str, tiles: list[int],
                              split_k: int, given_: int) -> None:
    """Any sizes, tiles and split-K: an answer with finite figures for a GEMM the device can
    hold and run, else a clean error (the tile flags each given or left out)."""
    argv = ["predict", "gemm", "--device", "h100-sxm", "--m", str(m), "--n", str(n), "--k",
            str(k), "--kernel", kernel, "--dtype", dtype, "--split-k", str(split_k), "--json"]
    for i, name in enumerate(pcli.TILE_ARGS):
        if given_ >> i & 1:
            argv += [pcli._flag(name), str(tiles[i])]
    before = len(stub_forest)
    rc, out = _run(argv, capsys)
    if rc:
        assert len(stub_forest) == before  # refused before the forest was asked
        return
    doc = json.loads(out)
    assert math.isfinite(doc["analytical"]["time_s"]) and doc["analytical"]["time_s"] > 0
    assert math.isfinite(doc["analytical"]["power_W"]) and doc["analytical"]["power_W"] > 0
    assert 1 <= m <= pcli.MAX_INT and 1 <= n <= pcli.MAX_INT and 1 <= k <= pcli.MAX_INT
    assert 1 <= split_k <= k
    (frame,) = stub_forest[before:]
    assert frame["threads_per_block"].iloc[0] <= H100.compute.max_threads_per_block


@FAST
@given(trees=INTS, seed=INTS, sample=INTS, repeats=INTS)
def test_evaluate_and_train_numbers(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    trees: int, seed: int, sample: int, repeats: int) -> None:
    """Whatever --trees, --seed, --sample and --repeats say: a clean error, or the work is
    asked for with settings scikit-learn and numpy accept."""
    calls: list[tuple[Any, ...]] = []
    small = datasets.validate(pd.DataFrame({"device": "h100-sxm", "dtype": "fp16",
                                            "M": [64 * (i + 1) for i in range(12)], "N": 64,
                                            "K": 64, "time_s": 1e-5}), "small")
    monkeypatch.setattr(datasets, "load", lambda *a, **kw: (calls.append(("load", kw)), small)[1])
    monkeypatch.setattr(evaluate, "evaluate", lambda df, name, s, **kw: (
        calls.append(("evaluate", s, kw)), pd.DataFrame(
            [{"dataset": name, "split": "random", "model": "analytical", "target": "time",
              "n_train": 1, "n_test": 1, "r2": 1.0, "mape_pct": 0.0, "median_ape_pct": 0.0,
              "level_free_mape_pct": 0.0, "seconds": 0.0}]))[1])
    out = tmp_path / "out"
    rc, _ = _run(["predict", "evaluate", "--data", "x", "--trees", str(trees), "--seed",
                  str(seed), "--sample", str(sample), "--repeats", str(repeats), "--out",
                  str(out), "--json"], capsys)
    if rc:
        assert not [c for c in calls if c[0] == "evaluate"]
        return
    (_, s, kw), = [c for c in calls if c[0] == "evaluate"]
    assert 1 <= s.n_estimators <= pcli.MAX_TREES and 0 <= s.seed <= pcli.MAX_SEED
    assert 1 <= kw["repeats"] <= pcli.MAX_REPEATS
    sample_kw = calls[0][1]["sample"]
    assert sample_kw is None or sample_kw >= 1


@settings(FAST, max_examples=20)
@given(cv=INTS)
def test_fit_power_folds(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                         cv: int) -> None:
    from simgpu.calibrate import fit

    asked: list[int] = []
    monkeypatch.setattr(fit, "fit_gemm_energies", lambda df, p: (
        {"ffma_flop": 1.0}, {"rows": len(df), "r2": 1.0, "rms_W": 0.0, "mape_pct": 0.0,
                             "nnls_r2": 1.0}, None))
    monkeypatch.setattr(fit, "power_fit_checks", lambda df, p, e, folds: (asked.append(folds),
                                                                          {})[1])
    rc, _ = _run(["predict", "fit-power", "--device", "h100-sxm", "--cv", str(cv), "--json"],
                 capsys)
    if rc:
        assert not asked
        return
    assert asked == [cv] and (cv == 0 or cv >= 2)


@FAST
# (no NUL and no lone surrogate: an environment variable cannot hold either)
@given(limit=st.one_of(st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                               max_size=6),
                       st.floats().map(repr), st.integers().map(str)))
@example(limit="0\x1f")  # whitespace to str.strip, not to float
def test_the_cache_limit_variable(monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    monkeypatch.setenv(cache.LIMIT_ENV, limit)
    try:
        got = cache.limit_bytes()
    except SimgpuError as exc:
        _one_line(exc)
        return
    # the variable is read stripped of whitespace (str.strip: "\x1f" is whitespace to it,
    # not to float)
    value = float(limit.strip()) if limit.strip() else cache.DEFAULT_LIMIT_MB
    assert math.isfinite(value) and got == int(value * 1e6) and got >= 0


def test_settings_reach_the_forest_only_in_range() -> None:
    """The stubbed handlers above pass settings on; Settings itself refuses the rest."""
    with pytest.raises(SimgpuError):
        model.Settings(n_estimators=0)
