"""Exceptions that simgpu raises for bad input. The CLI prints them without a traceback."""

from __future__ import annotations


class SimgpuError(Exception):
    """Base class: a problem with the user's input or environment, with a readable message."""


class DeviceFileError(SimgpuError):
    """A device TOML file is malformed: names the file, the key path, the value and the rule."""

    def __init__(self, path: str, key: str, value: object, expected: str) -> None:
        self.path = path
        self.key = key
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{path}: {key}: got {shown}, expected {expected}")


class DatasetError(SimgpuError):
    """A dataset (calibration table, trace, GEMM schema file) is malformed or inconsistent."""


class OutputError(SimgpuError, OSError):
    """An output path cannot be written: a file where a folder should be, no permission, a full
    disk. Names the path and the reason. Also an OSError, for callers that catch those."""


class GPUUnavailableError(SimgpuError):
    """CuPy or a CUDA GPU is needed for this command and is not present."""


class ExperimentError(SimgpuError):
    """An experiment (a study in ``experiments/``), its module or its arguments are not usable."""


class ViewUnavailable(SimgpuError):
    """A view (measured, simulated, analytical, learned) cannot answer for this workload on this
    device; the message says why (no trace of a closed-source kernel, no calibration row, a
    dtype the device lacks). Not a bug: a bug raises anything else."""
