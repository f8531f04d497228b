"""Hostile names and output folders: no command writes outside the folders it was given, every
unusable output folder is a one-line error, and nothing stored is overwritten.

The writing commands (``validate``, ``fit --write``, ``calibration-close``,
``calibration-summary``, and what ``calibrate`` does before it needs a GPU) run on a copy of a
bundled run, deep inside ``tmp_path``, with hostile run ids and names; the whole ``tmp_path``
tree is compared before and after each command.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgpu.calibrate import runner
from simgpu.calibrate.dataset import RunDir
from simgpu.cli import main
from simgpu.errors import DatasetError, GPUUnavailableError, SimgpuError
from simgpu.io import (
    OutputError,
    atomic_write_text,
    output_dir,
    plain_name,
    write_table,
)
from simgpu.validate.cli import _output_folder

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "calibration" / "h100-sxm" / "20261122T154219Z"

#: run ids and names that must never become part of a path as they are
HOSTILE = ["../../../../escape", "..", ".", "", "a/b", "x/../../y", "/ABS/escape", "-lead",
           ".hidden", "name with space", "tab\there", "nul\0byte", "a" * 300, "é-accent",
           "back\\slash", "~", "C:evil"]


def copy_run(dst_root: Path, tables: tuple[str, ...], run_id: str = "20261122T154219Z",
             **manifest: Any) -> Path:
    """A copy of the bundled quick H100 run with only ``tables``, its manifest edited."""
    run = dst_root / "h100-sxm" / "20261122T154219Z"
    run.mkdir(parents=True)
    for name in tables:
        shutil.copy(BUNDLED / f"{name}.csv", run / f"{name}.csv")
    m = json.loads((BUNDLED / "manifest.json").read_text())
    m["tables"] = {k: v for k, v in m["tables"].items() if k in tables}
    m["run_id"] = run_id
    m.update(manifest)
    (run / "manifest.json").write_text(json.dumps(m))
    return run


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root``: a file with its size and modification time, a folder as
    being there (its time changes with what is made inside it, which is checked itself)."""
    out = {}
    for p in root.rglob("*"):
        st_ = p.lstat()
        out[str(p.relative_to(root))] = (-1, 0) if p.is_dir() else (st_.st_size,
                                                                    st_.st_mtime_ns)
    return out


def changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> set[str]:
    return {p for p, v in after.items() if before.get(p) != v} | (set(before) - set(after))


@contextmanager
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder four levels below ``tmp_path`` (so ``../../..`` escapes land in
    ``tmp_path``), the current folder, with results and caches inside it."""
    work = tmp_path / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("SIMGPU_RESULTS", str(work / "results"))
    monkeypatch.setenv("SIMGPU_CACHE", str(work / "cache"))
    monkeypatch.setenv("HOME", str(work / "home"))
    yield work


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def no_gpu(*_: Any, **__: Any) -> Any:
    raise GPUUnavailableError("calibration needs CuPy and a CUDA GPU (none in this test)")


# --- writes outside ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../../../escape", "/ABS/escape", "..", "a/b", ""])
def test_no_command_writes_outside_its_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    bad: str,
) -> None:
    monkeypatch.setattr(runner, "require_cupy", no_gpu)
    with sandbox(tmp_path, monkeypatch) as work:
        bad = bad.replace("/ABS", str(tmp_path))  # an absolute path, inside tmp_path to see it
        cal = work / "cal"
        run = copy_run(cal, ("reduction", "launch", "pcie"), run_id=bad)
        models = work / "models"
        shutil.copytree(REPO / "models", models)
        (run / ".partial").mkdir()
        allowed = {"a/b/c/work/results", "a/b/c/work/models", "a/b/c/work/calout",
                   "a/b/c/work/cache", "a/b/c/work/home"}
        commands = [
            ["validate", "--device", "h100-sxm", "--run", str(run), "--views", "analytical"],
            ["--models", str(models), "fit", str(run), "--write", "--models-out", str(models)],
            ["calibration-close", str(run), "--reason", "GPU gone"],
            ["calibration-summary", str(run)],
            ["calibrate", "--resume", str(run), "--out", str(work / "calout")],
            ["calibrate", "--tag", bad, "--out", str(work / "calout")],
            ["calibrate", "--device", bad, "--out", str(work / "calout")],
        ]
        for argv in commands:
            before = tree(tmp_path)
            code, err = run_cli(argv, capsys)
            if argv[0] == "calibrate" and "--tag" in argv and bad == "":
                assert "CuPy" in err  # no tag at all: the GPU is all that is missing
            assert code == 2, (argv, err)
            assert err.startswith("simgpu: error: ") and err.count("\n") == 1, err
            outside = {p for p in changed(before, tree(tmp_path))
                       if not any(p == a or p.startswith(a + "/") for a in allowed)}
            assert not outside, (argv, outside)
        assert not (tmp_path / "a" / "b" / "escape").exists()
        assert not (tmp_path / "escape").exists()


def test_good_runs_write_inside_the_named_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same commands with a good run id do their work, all of it inside the folders."""
    with sandbox(tmp_path, monkeypatch) as work:
        run = copy_run(work / "cal", ("reduction", "launch", "pcie"))
        models = work / "models"
        shutil.copytree(REPO / "models", models)
        # the bundled file calibrated from this run: the fit below writes it again here
        (models / "h100-sxm-cal-20261122t154219z.toml").unlink(missing_ok=True)
        before = tree(tmp_path)
        argv = ["validate", "--device", "h100-sxm", "--run", str(run), "--views", "analytical"]
        assert main(argv) == 0
        assert main(argv) == 0  # the same second: a second folder, the first untouched
        assert main(["--models", str(models), "fit", str(run), "--write", "--models-out",
                     str(models)]) == 0
        assert main(["calibration-summary", str(run)]) == 0
        capsys.readouterr()
        new = changed(before, tree(tmp_path))
        assert new and all(p.startswith(("a/b/c/work/results", "a/b/c/work/models/",
                                         "a/b/c/work/cache", "a/b/c/work/home")) for p in new), new
        written = [p for p in new if (tmp_path / p).is_file()]
        assert all(p.startswith(("a/b/c/work/results/validate/h100-sxm/20261122T154219Z/",
                                 "a/b/c/work/models/", "a/b/c/work/cache/",
                                 "a/b/c/work/home/")) for p in written), written
        stamps = list((work / "results" / "validate" / "h100-sxm" / "20261122T154219Z").iterdir())
        assert len(stamps) == 2
        assert (models / "h100-sxm-cal-20261122t154219z.toml").is_file()
        # a second fit would overwrite the calibrated file: refused, the file kept
        text = (models / "h100-sxm-cal-20261122t154219z.toml").read_text()
        code, err = run_cli(["--models", str(models), "fit", str(run), "--write",
                             "--models-out", str(models)], capsys)
        assert code == 2 and "never overwritten" in err
        assert (models / "h100-sxm-cal-20261122t154219z.toml").read_text() == text


@pytest.mark.parametrize("bad", HOSTILE)
def test_names_from_data_are_plain_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SimgpuError, match="plain name"):
        plain_name(bad, "run id")
    with pytest.raises(DatasetError, match="run id|device name"):
        RunDir.create(tmp_path, "h100-sxm", bad, {})
    with pytest.raises(DatasetError, match="device name"):
        RunDir.create(tmp_path, bad, "20260101T000000Z", {})
    with pytest.raises(SimgpuError, match="plain name"):
        write_table(__import__("pandas").DataFrame({"x": [1]}), tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


# --- unusable output folders -----------------------------------------------------------------


def test_unusable_output_folders_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "require_cupy", no_gpu)
    with sandbox(tmp_path, monkeypatch) as work:
        run = copy_run(work / "cal", ("reduction", "launch", "pcie"))
        afile = work / "afile"
        afile.write_text("precious\n")
        v = ["validate", "--device", "h100-sxm", "--run", str(run), "--views", "analytical"]
        cases: list[tuple[list[str], dict[str, str], str]] = [
            ([*v, "--out", str(afile)], {}, "exists and is not a folder"),
            ([*v, "--out", str(afile / "sub")], {}, "is a file, not a folder"),
            (v, {"SIMGPU_RESULTS": str(afile)}, "exists and is not a folder"),
            (v, {"SIMGPU_RESULTS": str(afile / "r")}, "is a file, not a folder"),
            ([*v, "--views", "learned", "--only", "reduction"], {"SIMGPU_CACHE": str(afile)},
             "predictor cache"),
            (["fit", str(run), "--write", "--models-out", str(afile)], {},
             "exists and is not a folder"),
            (["calibrate", "--out", str(afile)], {}, "exists and is not a folder"),
            (["calibrate", "--out", str(afile / "x")], {}, "is a file, not a folder"),
            ([*v, "--out", "bad\0name"], {}, "NUL"),
        ]
        for argv, env, message in cases:
            with monkeypatch.context() as m:
                for k, val in env.items():
                    m.setenv(k, val)
                code, err = run_cli(argv, capsys)
            assert code == 2, (argv, err)
            assert err.startswith("simgpu: error: ") and err.count("\n") == 1, err
            assert message in err, (argv, err)
        assert afile.read_text() == "precious\n"


def test_a_folder_that_cannot_be_written_is_an_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No permission to write (simulated: tests may run as root, whom chmod does not stop)."""
    run = copy_run(tmp_path / "cal", ("reduction",))

    def denied(*_: Any, **__: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    code, err = run_cli(["validate", "--device", "h100-sxm", "--run", str(run), "--views",
                         "analytical", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "Permission denied" in err and "Traceback" not in err
    with pytest.raises(OutputError, match="Permission denied"):
        atomic_write_text(tmp_path / "x.txt", "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_an_output_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            output_dir(ro)
        with pytest.raises(OutputError):
            atomic_write_text(ro / "x.txt", "x")
    finally:
        ro.chmod(0o700)


def test_validate_never_overwrites_earlier_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(tmp_path / "cal", ("reduction",))
    out = tmp_path / "out"
    argv = ["validate", "--device", "h100-sxm", "--run", str(run), "--views", "analytical",
            "--out", str(out)]
    assert main(argv) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run_cli(argv, capsys)
    assert code == 2 and "already holds validate.csv" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_atomic_create_refuses_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    atomic_write_text(target, "first", overwrite=False)
    with pytest.raises(OutputError, match="never overwritten"):
        atomic_write_text(target, "second", overwrite=False)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]  # no temporary file left
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path, "x")


# --- properties -------------------------------------------------------------------------------

_names = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(HOSTILE)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_names)
def test_any_run_id_gives_a_folder_inside_the_results_or_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    results = root / "a" / "b" / "results"
    monkeypatch.setenv("SIMGPU_RESULTS", str(results))
    before = tree(root)
    try:
        out = _output_folder(None, "h100-sxm", name)
    except SimgpuError as exc:
        assert str(exc)
        assert changed(before, tree(root)) <= {"a", "a/b", "a/b/results", "a/b/results/validate",
                                               "a/b/results/validate/h100-sxm"}
    else:
        assert out.resolve().is_relative_to((results / "validate" / "h100-sxm").resolve())
        assert out.parent.name == name
    try:
        run = RunDir.create(root / "cal", "h100-sxm", name, {})
    except DatasetError as exc:
        assert str(exc)
    else:
        assert run.path.parent == root / "cal" / "h100-sxm" and run.path.name == name
        assert run.run_id == name
    assert not any(p.name == "escape" for p in tmp_path.rglob("*"))


_segment = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1,
                   max_size=12) | st.sampled_from(["..", ".", "a b", "\0"])


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_segment, min_size=1, max_size=3).filter(lambda p: p.count("..") < 2))
def test_validate_writes_inside_any_out_folder_or_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    parts: list[str],
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    run = copy_run(root / "cal", ("reduction",))
    work = root / "x" / "y" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    out = "/".join(parts)
    before = tree(root)
    code, err = run_cli(["validate", "--device", "h100-sxm", "--run", str(run), "--views",
                         "analytical", f"--out={out}"], capsys)
    new = changed(before, tree(root))
    if code == 0:
        target = (work / out).resolve()
        assert (target / "validate.csv").is_file()
        assert all((root / p).resolve().is_relative_to(target)
                   or target.is_relative_to((root / p).resolve())
                   or target_is_dir(root / p) for p in new), new  # or made on the way
    else:
        assert code == 2 and err.startswith("simgpu: error: "), err
        assert all(target_is_dir(root / p) for p in new), new


def target_is_dir(p: Path) -> bool:
    """Only folders may be left by a refused --out (the ones on the way to it)."""
    return p.is_dir() and not any(p.iterdir())
