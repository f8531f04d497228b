"""Device descriptions: typed specs loaded from the TOML files in ``models/``.

>>> from simgpu import devices
>>> spec = devices.get("h100-sxm")          # a DeviceSpec (GPU)
>>> spec.l2.size_MiB, spec.dram.type
(50.0, 'HBM3')

Importing this package needs only the standard library.
"""

from __future__ import annotations

from simgpu.devices.load import (
    dump,
    from_dict,
    kinds,
    load,
    load_device,
    loads,
    loads_device,
    register_kind,
    to_dict,
    toml_dumps,
)
from simgpu.devices.registry import (
    ENV_VAR,
    Registry,
    bundled_models_dir,
    get,
    get_device,
    list_devices,
    models_dir,
    names,
)
from simgpu.devices.spec import (
    ComputeSpec,
    Device,
    DeviceSpec,
    DramSpec,
    DramTimingSpec,
    FloatTable,
    HostLinkSpec,
    L1Spec,
    L2Spec,
    NocSpec,
    PowerSpec,
    RegisterFileSpec,
    Section,
    features,
)

__all__ = [
    "ComputeSpec",
    "Device",
    "DeviceSpec",
    "DramSpec",
    "DramTimingSpec",
    "ENV_VAR",
    "FloatTable",
    "HostLinkSpec",
    "L1Spec",
    "L2Spec",
    "NocSpec",
    "PowerSpec",
    "RegisterFileSpec",
    "Registry",
    "Section",
    "bundled_models_dir",
    "dump",
    "features",
    "from_dict",
    "get",
    "get_device",
    "kinds",
    "list_devices",
    "load",
    "load_device",
    "loads",
    "loads_device",
    "models_dir",
    "names",
    "register_kind",
    "to_dict",
    "toml_dumps",
]
