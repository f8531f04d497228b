"""Find device files: every ``*.toml`` in a models folder is one device, named by its stem.

The folder is, in order: an explicit argument (the CLI's ``--models DIR``), the ``SIMGPU_MODELS``
environment variable, or the ``models/`` folder bundled at the repository root. Adding a device
means adding one file there; nothing is registered in code.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import simgpu
from simgpu.devices.load import load, load_device
from simgpu.devices.spec import Device, DeviceSpec
from simgpu.errors import DeviceFileError, SimgpuError

__all__ = [
    "ENV_VAR",
    "bundled_models_dir",
    "models_dir",
    "Registry",
    "get",
    "get_device",
    "names",
    "list_devices",
]

#: Environment variable naming a models folder.
ENV_VAR = "SIMGPU_MODELS"


def bundled_models_dir() -> Path:
    """The ``models/`` folder shipped at the repository root."""
    return Path(simgpu.__file__).resolve().parent.parent / "models"


def models_dir(override: str | Path | None = None) -> Path:
    """The models folder to use: ``override``, else ``$SIMGPU_MODELS``, else the bundled one."""
    if override is not None and str(override) != "":
        return Path(override)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return bundled_models_dir()


class Registry:
    """The devices in one models folder. Files are read when first asked for, then kept."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = models_dir(folder)
        self._cache: dict[str, Device] = {}

    def _check_folder(self) -> None:
        if not self.folder.is_dir():
            raise SimgpuError(
                f"models folder {str(self.folder)!r} does not exist or is not a folder "
                f"(set --models DIR or {ENV_VAR})"
            )

    def paths(self) -> dict[str, Path]:
        """Device name -> file, for every ``*.toml`` in the folder, sorted by name. Anything so
        named but a folder counts (a FIFO, a dangling link), so that loading it reports why it
        is not a device file instead of it vanishing from the list."""
        self._check_folder()
        files = sorted(p for p in self.folder.glob("*.toml") if not p.is_dir())
        return {p.stem: p for p in files}

    def names(self) -> list[str]:
        """Names of the devices in the folder (file stems), sorted."""
        return list(self.paths())

    def path(self, name: str) -> Path:
        """The file of device ``name``; SimgpuError listing the available names if unknown."""
        paths = self.paths()
        if name not in paths:
            available = ", ".join(paths) or "none"
            raise SimgpuError(
                f"unknown device {name!r} in {str(self.folder)!r}; available: {available}"
            )
        return paths[name]

    def get_device(self, name: str) -> Device:
        """Load device ``name`` (any kind). Raises SimgpuError / DeviceFileError."""
        if name not in self._cache:
            self._cache[name] = load_device(self.path(name))
        return self._cache[name]

    def get(self, name: str) -> DeviceSpec:
        """Load GPU ``name``. Raises SimgpuError / DeviceFileError (also if not a GPU)."""
        device = self.get_device(name)
        if not isinstance(device, DeviceSpec):
            return load(self.path(name))  # raises the 'kind' error with the file name
        return device

    def list(self) -> list[Device]:
        """Every device in the folder, loaded; the first broken file raises DeviceFileError."""
        return [self.get_device(name) for name in self.names()]

    def load_all(self) -> tuple[builtins.list[Device], builtins.list[DeviceFileError]]:
        """Every device that loads, and the errors of those that do not."""
        good: builtins.list[Device] = []
        bad: builtins.list[DeviceFileError] = []
        for name in self.names():
            try:
                good.append(self.get_device(name))
            except DeviceFileError as exc:
                bad.append(exc)
        return good, bad


def get(name: str, models: str | Path | None = None) -> DeviceSpec:
    """Load GPU ``name`` from the models folder (see :func:`models_dir`)."""
    return Registry(models).get(name)


def get_device(name: str, models: str | Path | None = None) -> Device:
    """Load device ``name`` of any kind from the models folder."""
    return Registry(models).get_device(name)


def names(models: str | Path | None = None) -> list[str]:
    """Names of the devices in the models folder."""
    return Registry(models).names()


def list_devices(models: str | Path | None = None) -> list[Device]:
    """Every device in the models folder, loaded."""
    return Registry(models).list()
