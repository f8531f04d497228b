"""Hostile input to the learned predictor: its cache on disk, its datasets and the number
options of ``simgpu predict``. Every bad input gives a one-line error naming the file, the
field or line, the value and what was expected (exit 2), or a correct answer; a cache file is
never executed, and a bad one is reported in one line and replaced."""

from __future__ import annotations

import json
import os
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_errors import fails
from sklearn.ensemble import RandomForestRegressor

from simgpu.cli import main
from simgpu.errors import DatasetError, SimgpuError
from simgpu.predict import cache, datasets, model
from simgpu.predict.trees import ARRAYS, TreeArrays, TreeError

ROOT = Path(__file__).resolve().parents[1]
TINY = model.Settings(n_estimators=4, seed=1)
GEMM = ["predict", "gemm", "--device", "h100-sxm", "--m", "256", "--n", "256", "--k", "256",
        "--dtype", "fp16", "--data", "calibration", "--json"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(model.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.LIMIT_ENV, raising=False)


@pytest.fixture(scope="module")
def calib() -> pd.DataFrame:
    return datasets.load(ROOT / "calibration")


class _Payload:
    """Unpickling this writes a marker file: the proof that a cache file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


# --- the cache: nothing in a cache file runs ---------------------------------------------------


def test_a_crafted_pickle_in_the_cache_never_runs(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A pickle whose loading would run a command, put where the forest's cache file goes (and
    under the former .pkl name): `predict gemm` answers as before, runs nothing, says in one
    line that the file is not usable, and replaces it with a forest."""
    assert main(GEMM) == 0
    first = capsys.readouterr()
    want = json.loads(first.out)["learned"]
    df = datasets.load_many(["calibration"])
    _, info = model.train(df, model.Settings())
    path = Path(info["cache_path"])
    assert info["cached"] and path.parent == cache.cache_dir()
    marker = tmp_path / "payload-ran"
    evil = pickle.dumps(_Payload(marker))
    path.write_bytes(evil)
    path.with_suffix(".pkl").write_bytes(evil)
    assert main(GEMM) == 0
    out = capsys.readouterr()
    assert not marker.exists()
    got = json.loads(out.out)["learned"]
    assert got["time_s"] == want["time_s"] and got["power_W"] == want["power_W"]
    warned = [ln for ln in out.err.splitlines() if "not usable" in ln]
    assert len(warned) == 1 and str(path) in warned[0] and "Traceback" not in out.err
    assert zipfile.is_zipfile(path)  # replaced by a forest in the new format
    assert main(GEMM) == 0  # and that one loads without a word
    assert "not usable" not in capsys.readouterr().err and not marker.exists()


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_an_object_array_in_a_cache_file_is_refused_unread(calib: pd.DataFrame,
                                                          tmp_path: Path) -> None:
    """The same payload inside an .npy member (an object array, pickled by numpy)."""
    _, info = model.train(calib, TINY)
    path = Path(info["cache_path"])
    marker = tmp_path / "payload-ran"
    with zipfile.ZipFile(path, "a") as zf, zf.open("lo.npy", "w") as fh:
        np.lib.format.write_array(fh, np.array([_Payload(marker)], dtype=object),
                                  allow_pickle=True)
    with pytest.raises(cache.CacheFileError):
        cache.read(path)
    with pytest.warns(model.CacheWarning, match="not usable"):
        _, again = model.train(calib, TINY)
    assert not again["cached"] and not marker.exists()


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    meta, arrays = cache.read(path)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    edit(meta, arrays)
    cache.write(path, meta, arrays)


def _first_tree(arrays: dict[str, np.ndarray]) -> str:
    return next(k[: -len(".left")] for k in arrays if k.endswith(".left"))


def _backwards(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    arrays[_first_tree(arrays) + ".left"][0] = 0  # the root's child is itself: a cycle


def _outside(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    arrays[_first_tree(arrays) + ".right"][0] = 10**9


def _two_parents(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    t = _first_tree(arrays)
    left, right = arrays[t + ".left"], arrays[t + ".right"]
    right[0] = left[0]


def _nan_leaf(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    arrays[_first_tree(arrays) + ".value"][0, 0] = np.nan


def _shallow(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    for part in meta["forest"]["parts"].values():
        for trees in part["trees"].values():
            trees["max_depth"] = 1


def _bad_feature(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    arrays[_first_tree(arrays) + ".feature"][0] = 999


def _float_codes(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    t = _first_tree(arrays)
    arrays[t + ".left"] = arrays[t + ".left"].astype(np.float64)


def _other_key(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    meta["key"] = "0" * 24


def _other_format(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    meta["version"] = 99


def _bad_settings(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    meta["forest"]["settings"]["n_estimators"] = "many"


def _unknown_part(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    meta["forest"]["parts"]["../../x"] = {}


def _missing_array(meta: dict, arrays: dict[str, np.ndarray]) -> None:
    del arrays[_first_tree(arrays) + ".threshold"]


def _write_bytes(data: bytes):  # type: ignore[no-untyped-def]
    def damage(path: Path) -> None:
        path.write_bytes(data)

    return damage


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _symlink_to_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _huge_header(path: Path) -> None:
    """An .npy member whose header claims 10^12 elements."""
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("lo.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False,"
                              b" 'shape': (1000000000000,), }" + b" " * 50 + b"\n")


EDITS = [_backwards, _outside, _two_parents, _nan_leaf, _shallow, _bad_feature, _float_codes,
         _other_key, _other_format, _bad_settings, _unknown_part, _missing_array]
DAMAGE = [_write_bytes(b""), _write_bytes(b"not a zip"), _write_bytes(os.urandom(4096)),
          _write_bytes(b"cos\nsystem\n(S'echo hi'\ntR."),
          _write_bytes(b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x0eno_such_module"
                       b"\x94\x8c\x03Cls\x94\x93\x94."),
          _truncate, _symlink_to_zero, _fifo, _huge_header]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("damage", [*EDITS, *DAMAGE], ids=lambda f: getattr(
    f, "__name__", "bytes"))
def test_a_bad_cache_file_is_reported_and_replaced(calib: pd.DataFrame, damage) -> None:  # type: ignore[no-untyped-def]
    forest, info = model.train(calib, TINY)
    path = Path(info["cache_path"])
    want = forest.predict(calib, warn=False)
    if damage in EDITS:
        _rewrite(path, damage)
    else:
        damage(path)
    said: list[str] = []
    t0 = time.perf_counter()
    again, info2 = model.train(calib, TINY, log=said.append)
    assert time.perf_counter() - t0 < 30  # a FIFO or /dev/zero is not read
    assert not info2["cached"]
    warned = [m for m in said if "not usable" in m]
    assert len(warned) == 1 and str(path) in warned[0] and "\n" not in warned[0]
    pd.testing.assert_frame_equal(again.predict(calib, warn=False), want)
    assert path.is_file() and not path.is_symlink()
    _, info3 = model.train(calib, TINY)  # the replacement loads
    assert info3["cached"]


def test_a_cached_forest_predicts_the_same_numbers(calib: pd.DataFrame) -> None:
    forest, first = model.train(calib, TINY)
    loaded, again = model.train(calib, TINY)
    assert not first["cached"] and again["cached"]
    pd.testing.assert_frame_equal(loaded.predict(calib, warn=False),
                                  forest.predict(calib, warn=False))


def test_an_unusable_cache_folder_is_an_error_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv(model.CACHE_ENV, str(tmp_path / "afile"))
    t0 = time.perf_counter()
    fails(capsys, GEMM, "predictor cache", "afile", "$SIMGPU_CACHE")
    assert time.perf_counter() - t0 < 20
    assert (tmp_path / "afile").read_text() == "x"


# --- the cache: bounded, listed, cleared -----------------------------------------------------


def test_the_cache_keeps_the_recently_used_forests_within_its_limit(
        calib: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = []
    for seed in (1, 2, 3):
        _, info = model.train(calib, model.Settings(n_estimators=4, seed=seed))
        sizes.append(Path(info["cache_path"]).stat().st_size)
    folder = cache.cache_dir()
    names = [e.path.name for e in cache.entries()]
    assert len(names) == 3
    # room for three: the least recently used goes when a fourth arrives
    monkeypatch.setenv(cache.LIMIT_ENV, str(3.5 * max(sizes) / 1e6))
    os.utime(folder / names[0], (time.time() + 5, time.time() + 5))  # the first, used last
    said: list[str] = []
    _, info = model.train(calib, model.Settings(n_estimators=4, seed=4), log=said.append)
    left = {e.path.name for e in cache.entries()}
    assert left == {names[0], names[2], Path(info["cache_path"]).name}
    assert any(names[1] in m and "least recently used" in m for m in said)
    assert sum(e.bytes for e in cache.entries()) <= cache.limit_bytes()


def test_a_limit_of_zero_caches_nothing_and_a_bad_limit_is_an_error(
        calib: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(cache.LIMIT_ENV, "0")
    _, info = model.train(calib, TINY)
    assert not Path(info["cache_path"]).exists()
    monkeypatch.setenv(cache.LIMIT_ENV, "0.001")  # 1 kB: smaller than any forest
    with pytest.warns(model.CacheWarning, match="over the cache's limit"):
        model.train(calib, TINY)
    assert not cache.entries()
    for bad in ("abc", "-5", "nan", "inf"):
        monkeypatch.setenv(cache.LIMIT_ENV, bad)
        fails(capsys, GEMM, cache.LIMIT_ENV, repr(bad), "number of megabytes")


def test_predict_cache_lists_and_clears_only_its_own_files(
        calib: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    _, info = model.train(calib, TINY, data=["calibration"])
    folder = cache.cache_dir()
    (folder / ("a" * 24 + ".pkl")).write_bytes(b"old")
    stale = folder / (".%s.npz.x1y2.tmp" % ("b" * 24))
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    fresh = folder / (".%s.npz.x3y4.tmp" % ("c" * 24))
    fresh.write_bytes(b"being written")
    mine = folder / "notes.txt"
    mine.write_text("not the cache's")
    (folder / ("d" * 24 + ".npz")).write_bytes(b"garbage")
    assert main(["predict", "cache"]) == 0
    out = capsys.readouterr().out
    assert Path(info["cache_path"]).name in out
    assert "forest+physics, 4 trees, seed 1" in out and "rows of calibration" in out
    assert "never loaded" in out and "interrupted write" in out and "not usable" in out
    assert "notes.txt" not in out and fresh.name not in out
    assert main(["predict", "cache", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["entries"]) == 4 and doc["limit_bytes"] == 1000 * 10**6
    assert main(["predict", "cache", "--clear"]) == 0
    assert "removed 4 file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == sorted([fresh.name, "notes.txt"])


# --- the trees as arrays --------------------------------------------------------------------


@pytest.mark.parametrize("outputs", [1, 2])
def test_tree_arrays_predict_what_scikit_learn_predicts(outputs: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    X[:, 2] = rng.integers(0, 4, size=400)  # ties, as tile columns have
    y = X[:, 0] * 2 + np.sin(X[:, 1]) + rng.normal(size=400) * 0.1
    Y = y if outputs == 1 else np.column_stack([y, X[:, 3]])
    forest = RandomForestRegressor(n_estimators=7, random_state=0, max_features=0.5).fit(X, Y)
    trees = TreeArrays.from_sklearn(forest)
    # rows exactly at thresholds, just beside them, and far outside the training range
    thr = trees.threshold[rng.integers(0, len(trees.threshold), size=(300, 6))].astype(float)
    near = np.nextafter(thr, np.inf)
    Q = np.vstack([X, thr, near, rng.normal(size=(50, 6)) * 1e6, np.zeros((1, 6))])
    want = np.stack([t.predict(Q) for t in forest.estimators_])
    got = trees.predict(Q)
    assert got.shape == want.shape and np.array_equal(got, want)
    back = TreeArrays.from_arrays({k: np.array(v) for k, v in trees.arrays().items()},
                                  trees.n_features, trees.max_depth)
    assert np.array_equal(back.predict(Q), want)


def test_tree_arrays_refuse_what_is_not_a_forest() -> None:
    forest = RandomForestRegressor(n_estimators=2, random_state=0).fit(
        np.arange(40.0).reshape(20, 2), np.arange(20.0))
    good = TreeArrays.from_sklearn(forest)
    a = {k: np.array(v) for k, v in good.arrays().items()}
    with pytest.raises(TreeError, match="missing"):
        TreeArrays.from_arrays({k: v for k, v in a.items() if k != "value"}, 2, good.max_depth)
    for name, dtype in ARRAYS.items():
        wrong = np.float32 if dtype.kind != "f" else np.int64
        with pytest.raises(TreeError, match=name):
            TreeArrays.from_arrays({**a, name: a[name].astype(wrong)}, 2, good.max_depth)
    with pytest.raises(TreeError, match="deeper"):
        TreeArrays.from_arrays(a, 2, good.max_depth - 1)
    with pytest.raises(TreeError, match="max_depth"):
        TreeArrays.from_arrays(a, 2, 10**9)
    with pytest.raises(TreeError, match="feature"):
        TreeArrays.from_arrays(a, 1, good.max_depth)


# --- datasets ---------------------------------------------------------------------------------

HEADER = "device,dtype,M,N,K,time_s\n"
ROWS = "".join(f"h100-sxm,fp16,{64 * i},64,64,{1e-5 * i}\n" for i in range(1, 13))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (HEADER + ROWS + "h100-sxm,fp16,12", ("line 14 is cut short", "3 of 6 fields",
                                              "looks torn")),
        (HEADER + "h100-sxm,fp16,64\n" + ROWS, ("line 2: 3 fields, the header has 6",)),
        (HEADER + ROWS + "h100-sxm,fp16,64,64,64,1e-5,7\n", ("line 14: 7 fields",)),
        (HEADER + ROWS + '"h100-sxm,fp16,64,64,64,1e-5\n', ("line 14", "not CSV")),
        ("", ("empty file",)),
        ("\n\n  \n", ("empty file",)),
        (HEADER, ("empty dataset",)),
        (b"device,dtype,M,N,K,time_s\nh100-sxm,fp16,\xff,64,64,1e-5\n",
         ("line 2, byte 15", "not UTF-8")),
        (HEADER + "h100-sxm,fp16,64,64,64,1e-5\x00\n", ("line 2: a NUL byte",)),
        ("device,dtype,M,M,K,time_s\nh100-sxm,fp16,64,64,64,1e-5\n", ("['M'] named twice",)),
        (HEADER + ROWS.replace("fp16,128,", "fp16,abc,"), ("column 'M', row 1", "'abc'",
                                                           "integer from 1 to 2147483647")),
        (HEADER + f"h100-sxm,fp16,{2**70},64,64,1e-5\n", ("column 'M'", "2147483647")),
        (HEADER + "h100-sxm,fp16,1e30,64,64,1e-5\n", ("column 'M'", "1e+30")),
        (HEADER + "h100-sxm,fp16,64,64,64,inf\n", ("column 'time_s'", "finite number > 0")),
        (HEADER + ROWS + ",fp16,64,64,64,1e-5\n", ("column 'device'", "line 14", "empty")),
        ("device,dtype,M,N,K,time_s,param_x\nh100-sxm,fp16,64,64,64,1e-5,abc\n",
         ("column 'param_x'", "'abc'", "finite number")),
        ("device,dtype,M,N,K,time_ms\nh100-sxm,fp16,64,64,64,fast\n",
         ("column 'time_ms'", "'fast'", "milliseconds")),
        ("M,N,K,runtime_ms,layout_arg,beta,blocksize1\n64,64,64,abc,nn,0,1\n",
         ("column 'runtime_ms'", "'abc'")),
        ("Latency,Device,Kernel Name,B,M,N,K,Block x,Grid z\n"
         "1,Tesla T4,volta_sgemm_128x64_tn,1,2,3,abc,256,1\n", ("column 'K'", "'abc'")),
        ("MWG,NWG,KWG,MDIMC,NDIMC,MDIMA,NDIMB,KWI,VWM,VWN,STRM,STRN,SA,SB,Run1 (ms)\n"
         "64,64,32,0,8,8,8,2,1,1,0,0,0,0,10\n", ("column 'MDIMC'", "got 0")),
        ("device,dtype,M,N,K,time_s,dev_sm_count,dev_clock_MHz,dev_fp32_lanes_per_sm,"
         "dev_dram_GBps,dev_l2_MiB,dev_smem_per_sm_KiB,dev_tdp_W\n"
         + "".join(f"x,fp32,{64 * i},64,64,1e-5,{80 + i % 2},1500,64,900,6,96,250\n"
                   for i in range(1, 13)), ("device 'x'", "disagree", "dev_sm_count")),
    ],
)
def test_a_bad_dataset_file_is_one_line_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes,
        expected: tuple[str, ...]) -> None:
    f = tmp_path / "data.csv"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    out = tmp_path / "out"
    fails(capsys, ["predict", "evaluate", "--data", str(f), "--no-tune", "--trees", "3",
                    "--out", str(out)], "data.csv", *expected)
    assert not out.exists()  # nothing written for refused data


def test_a_complete_last_line_without_its_end_of_line_is_read(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_text(HEADER + ROWS.rstrip("\n"))
    assert len(datasets.load(f)) == 12


def test_a_fifo_or_a_folder_as_data_is_refused_without_blocking(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "p.csv"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    fails(capsys, ["predict", "train", "--data", str(fifo)], "p.csv", "not a regular file")
    assert time.perf_counter() - t0 < 20
    (tmp_path / "z.zip").write_bytes(b"PK\x03\x04garbage")
    fails(capsys, ["predict", "train", "--data", str(tmp_path / "z.zip")], "z.zip", "zip")


def test_rows_that_all_look_alike_train_a_forest_of_their_mean(tmp_path: Path) -> None:
    df = datasets.validate(pd.DataFrame({"device": "h100-sxm", "dtype": "fp16", "M": [512] * 12,
                                         "N": 512, "K": 512, "time_s": 1e-4}), "alike")
    out = model.GemmForest(TINY).fit(df).predict(df, warn=False)
    assert np.allclose(out["time_s"], 1e-4)


def test_evaluate_refuses_too_few_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "one.csv"
    f.write_text(HEADER + "h100-sxm,fp16,64,64,64,1e-5\n")
    fails(capsys, ["predict", "evaluate", "--data", str(f), "--out", str(tmp_path / "o")],
           "one.csv", "1 row(s)", "at least 10")


# --- number options ---------------------------------------------------------------------------

G = ["predict", "gemm", "--device", "h100-sxm", "--m", "64", "--n", "64", "--k", "64",
     "--data", "calibration"]
TILED = [*G, "--kernel", "sgemm_tiled", "--dtype", "fp32"]
EV = ["predict", "evaluate", "--data", "calibration", "--no-tune"]
TR = ["predict", "train", "--data", "calibration"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([*TILED, "--tile-m", "3"], ("--tile-m 3: no variant of sgemm_tiled",
                                     "tile16: tile 16x16x16")),
        ([*TILED, "--tile-m", "1024"], ("--tile-m 1024: no variant",)),
        ([*TILED, "--tile-m", "16", "--tile-n", "32"], ("--tile-m 16, --tile-n 32",)),
        ([*TILED, "--split-k", "4"], ("--split-k 4: sgemm_tiled does not split K",)),
        ([*G, "--kernel", "sgemm_tiled", "--dtype", "fp16"], ("sgemm_tiled runs fp32",)),
        ([*G, "--threads-per-block", "1000000"], ("--threads-per-block 1000000",
                                                  "from 0 to 1024 on h100-sxm")),
        ([*G, "--kernel", "cutlass", "--threads-per-block", "2048"], ("from 0 to 1024",)),
        ([*G, "--tile-m", "4096", "--tile-n", "4096"], ("cannot run on h100-sxm",
                                                        "shared memory per block")),
        ([*G, "--tile-k", "8"], ("--tile-k for cublas: give --tile-m and --tile-n",)),
        ([*G, "--tile-m", "128", "--tile-n", "128", "--thread-tile-m", "1000"],
         ("--thread-tile-m 1000", "at most --tile-m")),
        ([*G, "--tile-m", "128", "--tile-n", "128", "--threads-per-block", "256",
          "--thread-tile-m", "4", "--thread-tile-n", "4"], ("covers 4096 elements of C",)),
        ([*G, "--tile-m", "-1"], ("--tile-m -1", "from 0 to")),
        ([*G, "--split-k", "0"], ("--split-k 0", "from 1 to 64")),
        ([*G, "--split-k", "-3"], ("--split-k -3",)),
        ([*G, "--split-k", "100"], ("--split-k 100", "at most K")),
        ([*G, "--kernel", "stream_copy"], ("--kernel 'stream_copy': expected a GEMM kernel",)),
        ([*G, "--kernel", "nope"], ("--kernel 'nope'",)),
        (["predict", "gemm", "--device", "h100-sxm", "--m", "0", "--n", "64", "--k", "64"],
         ("--m 0: expected an integer from 1 to 2147483647",)),
        (["predict", "gemm", "--device", "h100-sxm", "--m", str(2**70), "--n", "64", "--k",
          "64"], ("--m 1180591620717411303424",)),
        (["predict", "gemm", "--device", "h100-sxm", "--m", "1000000000", "--n", "64", "--k",
          "64"], ("its arrays take", "h100-sxm has 80 GiB of device memory")),
        (["predict", "gemm", "--device", "h100-sxm", "--m", "200000", "--n", "200000", "--k",
          "200000", "--dtype", "fp16"], ("223.5 GiB", "80 GiB")),
        ([*EV, "--trees", "0"], ("--trees 0: expected an integer from 1 to 5000",)),
        ([*EV, "--trees", "-1"], ("--trees -1",)),
        ([*EV, "--trees", "1000000000"], ("--trees 1000000000",)),
        ([*EV, "--sample", "-5"], ("--sample -5", "0: every row")),
        ([*EV, "--repeats", "0"], ("--repeats 0: expected an integer from 1 to 100",)),
        ([*EV, "--repeats", "1000000"], ("--repeats 1000000",)),
        ([*EV, "--seed", "-1"], ("--seed -1",)),
        ([*EV, "--seed", str(2**40)], ("--seed 1099511627776", "4294967295")),
        ([*EV, "--sample", "3"], ("3 row(s)", "at least 10")),
        ([*TR, "--trees", "0"], ("--trees 0",)),
        ([*TR, "--seed", "-7"], ("--seed -7",)),
        (["predict", "fit-power", "--device", "h100-sxm", "--cv", "100000"],
         ("--cv 100000: expected 0 (no held-out check) or 2 to",)),
        (["predict", "fit-power", "--device", "h100-sxm", "--cv", "1"], ("--cv 1",)),
        (["predict", "fit-power", "--device", "h100-sxm", "--cv", "-3"], ("--cv -3",)),
    ],
)
def test_bad_numbers_fail_clearly_and_promptly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               argv: list[str], expected: tuple[str, ...]) -> None:
    if argv[1] in ("evaluate", "train"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    t0 = time.perf_counter()
    fails(capsys, argv, *expected)
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out").exists() and not cache.entries()  # nothing trained or written


def test_a_variant_named_by_its_tile_is_that_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*TILED, "--tile-m", "32", "--data", "calibration", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["analytical"]["tile"] == [32, 32, 32]
    assert np.isfinite(doc["learned"]["time_s"]) and doc["learned"]["time_s"] > 0


def test_library_settings_are_checked() -> None:
    for bad in ({"n_estimators": 0}, {"seed": -1}, {"min_samples_leaf": 0},
                {"max_features": 1.5}, {"n_estimators": "100"}):
        with pytest.raises(DatasetError, match="predictor setting"):
            model.Settings(**bad)  # type: ignore[arg-type]
    with pytest.raises(SimgpuError, match="sample -1"):
        datasets.load("calibration", sample=-1)
