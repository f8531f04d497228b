"""The pim_decode and dataflow_vs_gpu experiments: one grid point each, table and figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pim_decode_point_and_outputs(tmp_path: Path) -> None:
    import pandas as pd

    module = load("pim_decode")
    for attr in ("NAME", "DESCRIPTION", "GRID", "run_point", "plot"):
        assert hasattr(module, attr)
    rows = module.run_point(
        {"device": "h100-sxm", "model": "gpt2-125m", "pim": "hbm-pim x5", "seq_len": 128}
    )
    (row,) = rows
    assert row["fits_in_pim"] and row["pim_units"] == 640
    assert row["speedup"] == pytest.approx(row["gpu_time_s"] / row["pim_time_s"])
    assert row["energy_ratio"] == pytest.approx(row["gpu_energy_J"] / row["pim_energy_J"])
    # the PIM GEMV can never beat the internal / external bandwidth ratio of its memory (4x)
    assert 1.0 < row["gemv_speedup_same_memory"] < 4.0
    df = pd.DataFrame(rows)
    paths = module.plot(df, tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert "8.9" in (tmp_path / "explanation.md").read_text()
    with pytest.raises(Exception, match="pim"):
        module.pim_target("hbm-pim x3", None)


def test_dataflow_vs_gpu_point_and_figure(tmp_path: Path) -> None:
    import pandas as pd

    module = load("dataflow_vs_gpu")
    rows = []
    for df in ("os", "ws"):
        rows += module.run_point(
            {"device": "systolic-32x32", "gpu": "h100-sxm", "dataflow": df, "size": 256}
        )
    for row in rows:
        assert 0 < row["utilization"] <= 1 and 0 < row["gpu_utilization"] <= 1
        assert row["cycles"] >= row["compute_cycles"]
        assert row["time_ratio_vs_gpu_kernel"] >= row["time_ratio_vs_gpu"]
    paths = module.plot(pd.DataFrame(rows), tmp_path)
    assert paths and all(p.exists() for p in paths)
