"""Experiment discovery and ``simgpu experiment run``: results folder, resume, failures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from simgpu.cli import main
from simgpu.errors import ExperimentError
from simgpu.experiments.registry import discover, get

TINY = textwrap.dedent(
    '''
    """A tiny experiment for the tests."""
    import sys
    from pathlib import Path

    NAME = "tiny"
    DESCRIPTION = "squares and a figure"
    GRID = {"device": ["h100-sxm"], "x": [1, 2, 3], "fail": [False]}
    CALLS = Path(__file__).with_name("calls.txt")

    def run_point(params):
        with CALLS.open("a") as fh:
            fh.write(f"{params['x']}\\n")
        if params["fail"] and params["x"] == 2:
            from simgpu.errors import SimgpuError
            raise SimgpuError("x = 2 cannot be done")
        return [{"device": params["device"], "x": params["x"], "y": params["x"] ** 2}]

    def plot(df, out_dir):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from simgpu.io import save_figure
        fig, ax = plt.subplots()
        ax.plot(df["x"], df["y"], "o-")
        ax.set_xlabel("x [1]")
        ax.set_ylabel("y [1]")
        ax.set_title("tiny")
        return [save_figure(fig, Path(out_dir) / "tiny.png")]

    if __name__ == "__main__":
        from simgpu.experiments.runner import run_experiment
        run_experiment(sys.modules[__name__])
    '''
)


@pytest.fixture()
def exp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY)
    # listed without being imported: a file that raises on import still shows up
    (folder / "noisy.py").write_text('NAME = "noisy"\nDESCRIPTION = "d"\nGRID = {}\n'
                                     'raise RuntimeError("imported!")\n')
    (folder / "helper.py").write_text("X = 1\n")  # no NAME/GRID: not an experiment
    (folder / "_private.py").write_text('NAME = "private"\nGRID = {}\n')
    monkeypatch.setenv("SIMGPU_EXPERIMENTS", str(folder))
    return folder


def _calls(exp_dir: Path) -> list[int]:
    path = exp_dir / "calls.txt"
    return [int(s) for s in path.read_text().split()] if path.exists() else []


def test_discover_reads_names_without_importing(exp_dir):
    found = discover()
    assert sorted(found) == ["noisy", "tiny"]
    assert found["tiny"].description == "squares and a figure"
    with pytest.raises(ExperimentError, match="known: noisy, tiny"):
        get("nope")


def test_list_command(exp_dir, capsys):
    assert main(["experiment", "list", "--json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert listed["tiny"]["description"] == "squares and a figure"


def test_run_writes_table_config_figure_and_resumes(exp_dir, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["experiment", "run", "tiny", "--out", str(out), "--no-progress"]) == 0
    df = pd.read_csv(out / "tiny.csv")
    assert list(df["y"]) == [1, 4, 9]
    assert pd.read_parquet(out / "tiny.parquet")["x"].tolist() == [1, 2, 3]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["grid"]["x"] == [1, 2, 3] and cfg["rows"] == 3
    assert (out / "tiny.png").read_bytes()[:4] == b"\x89PNG"
    assert _calls(exp_dir) == [1, 2, 3]
    # a rerun with one more value computes only the new point
    assert main(["experiment", "run", "tiny", "--out", str(out), "--set", "x=1,2,3,4",
                 "--no-progress"]) == 0
    assert _calls(exp_dir) == [1, 2, 3, 4]
    assert list(pd.read_csv(out / "tiny.csv")["y"]) == [1, 4, 9, 16]


def test_default_folder_is_results_name_hash(exp_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMGPU_RESULTS", str(tmp_path / "results"))
    assert main(["experiment", "run", "tiny", "--no-progress"]) == 0
    runs = list((tmp_path / "results" / "tiny").iterdir())
    assert len(runs) == 1 and (runs[0] / "tiny.csv").exists()
    # a different grid goes to a different folder; the first is untouched
    before = (runs[0] / "tiny.csv").read_bytes()
    assert main(["experiment", "run", "tiny", "--set", "x=5", "--no-progress"]) == 0
    assert len(list((tmp_path / "results" / "tiny").iterdir())) == 2
    assert (runs[0] / "tiny.csv").read_bytes() == before


def test_changed_code_gets_a_new_default_folder(exp_dir, tmp_path, monkeypatch):
    """Points computed by older code are not reused: the default folder hashes the code too."""
    monkeypatch.setenv("SIMGPU_RESULTS", str(tmp_path / "results"))
    assert main(["experiment", "run", "tiny", "--no-progress"]) == 0
    assert main(["experiment", "run", "tiny", "--no-progress"]) == 0  # resumed: same folder
    (first,) = (tmp_path / "results" / "tiny").iterdir()
    assert _calls(exp_dir) == [1, 2, 3]
    path = exp_dir / "tiny.py"
    path.write_text(path.read_text().replace('"y": params["x"] ** 2', '"y": params["x"] ** 3'))
    assert main(["experiment", "run", "tiny", "--no-progress"]) == 0
    (new,) = set((tmp_path / "results" / "tiny").iterdir()) - {first}
    assert _calls(exp_dir) == [1, 2, 3, 1, 2, 3]  # every point computed again
    assert sorted(pd.read_csv(first / "tiny.csv")["y"]) == [1, 4, 9]  # the old run is kept
    codes = [json.loads((d / "config.json").read_text())["code"] for d in (first, new)]
    assert codes[0] != codes[1] and all(len(c) == 12 for c in codes)


def test_failures_exit_non_zero(exp_dir, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["experiment", "run", "tiny", "--out", str(out), "--set", "fail=true",
                 "--no-progress"]) == 2
    assert "x = 2 cannot be done" in capsys.readouterr().err
    # in parallel the other points finish and are kept; the run still fails
    out2 = tmp_path / "res2"
    assert main(["experiment", "run", "tiny", "--out", str(out2), "--set", "fail=true",
                 "--workers", "2", "--no-progress"]) == 2
    assert sorted(pd.read_csv(out2 / "tiny.csv")["x"]) == [1, 3]
    assert main(["experiment", "run", "nope", "--out", str(out)]) == 2
    assert main(["experiment", "run", "tiny", "--set", "bogus=1", "--out", str(out)]) == 2


def test_script_entry_point_shares_the_results_folder(exp_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "res"
    subprocess.run([sys.executable, str(exp_dir / "tiny.py"), "--out", str(out),
                    "--no-progress"], check=True, capture_output=True)
    assert _calls(exp_dir) == [1, 2, 3]
    assert main(["experiment", "run", "tiny", "--out", str(out), "--no-progress"]) == 0
    assert _calls(exp_dir) == [1, 2, 3]  # the CLI resumed the script's run: nothing redone


def test_script_entry_point_runs_points_in_parallel(exp_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "res"
    subprocess.run([sys.executable, str(exp_dir / "tiny.py"), "--out", str(out), "--workers",
                    "2", "--no-progress"], check=True, capture_output=True)
    assert sorted(_calls(exp_dir)) == [1, 2, 3]
    assert list(pd.read_csv(out / "tiny.csv")["y"]) == [1, 4, 9]
    bad = subprocess.run([sys.executable, str(exp_dir / "tiny.py"), "--out", str(tmp_path / "b"),
                          "--set", "fail=true", "--workers", "2", "--no-progress"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "1 point(s) failed" in bad.stderr


def test_fingerprint_of_sub_packages_follows_only_their_sources(tmp_path, monkeypatch):
    """The predictor's cache key hashes the analytical and predict sources: an edit there
    retrains it, an edit elsewhere in the package does not."""
    import simgpu
    from simgpu.io import code_fingerprint

    pkg = tmp_path / "simgpu"
    for sub in ("analytical", "predict", "sim"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "m.py").write_text("x = 1\n")
    (pkg / "__init__.py").write_text("")
    monkeypatch.setattr(simgpu, "__file__", str(pkg / "__init__.py"))
    scoped = code_fingerprint(packages=("analytical", "predict"), models=None)
    whole = code_fingerprint(models=None)
    (pkg / "sim" / "m.py").write_text("x = 2\n")
    assert code_fingerprint(packages=("analytical", "predict"), models=None) == scoped
    assert code_fingerprint(models=None) != whole
    (pkg / "analytical" / "m.py").write_text("x = 3\n")
    assert code_fingerprint(packages=("analytical", "predict"), models=None) != scoped
