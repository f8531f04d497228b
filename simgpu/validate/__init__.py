"""Validation: hold the simulated, analytical and learned views against measured runs."""

from __future__ import annotations

from simgpu.validate.core import VIEWS, summary, validate_run

__all__ = ["VIEWS", "summary", "validate_run"]
