"""Fixtures the predictor's tests share: the bundled calibration rows, and a predictor cache of
the test's own (``pytestmark = pytest.mark.usefixtures("predict_cache")`` in a module)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simgpu.predict import datasets, model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def calib() -> pd.DataFrame:
    return datasets.load(ROOT / "calibration")


@pytest.fixture
def predict_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(model.CACHE_ENV, str(tmp_path / "cache"))
