"""Each part imports only what it uses: heavy packages stay out of paths that do not need them.

The lent GPU machine has no SimPy and no package index, so the calibration path must run from the
checkout without importing the simulator; `simgpu devices list` must not pull in SimPy, CuPy or
scikit-learn. Each check runs in a fresh interpreter where importing the forbidden packages fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {{name}}")
        return None
sys.meta_path.insert(0, Block())
sys.argv = {argv!r}
import runpy
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    sys.exit(exc.code)
"""


def _run(module: str, argv: list[str], blocked: set[str], cwd: Path) -> subprocess.CompletedProcess:
    code = _BLOCKER.format(blocked=sorted(blocked), argv=[module, *argv], module=module)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_calibrate_runs_from_the_checkout_without_the_simulator(tmp_path: Path) -> None:
    # no CuPy here either: the run must get as far as the CuPy check and stop cleanly
    blocked = {"simpy", "sklearn", "matplotlib", "cupy", "dask"}
    proc = _run("simgpu.calibrate", ["--quick", "--out", str(tmp_path / "cal")], blocked,
                tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "calibration needs CuPy and a CUDA GPU" in proc.stderr
    assert "blocked for this test" in proc.stderr  # the CuPy import was the one refused
    assert "simpy" not in proc.stderr and "sklearn" not in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["devices", "list"], ["devices", "show", "h100-sxm"]])
def test_devices_commands_import_no_heavy_packages(tmp_path: Path, argv: list[str]) -> None:
    blocked = {"simpy", "sklearn", "cupy", "dask", "matplotlib", "scipy"}
    proc = _run("simgpu", argv, blocked, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "h100-sxm" in proc.stdout
