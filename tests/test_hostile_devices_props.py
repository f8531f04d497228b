"""Property tests of the device loader and the Accel-Sim config importer: whatever the input, a
clean DeviceFileError (or SimgpuError) with a message, or a device whose every number lies in its
field's plausible range; never another exception."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_devices import CONFIG

from simgpu import devices
from simgpu.devices import load_device, toml_dumps
from simgpu.devices.accelsim import import_config, parse_config
from simgpu.devices.spec import Device, FloatTable, Section
from simgpu.errors import DeviceFileError, SimgpuError

MODELS = Path(__file__).resolve().parent.parent / "models"
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
BASES = {
    name: tomllib.loads((MODELS / f"{name}.toml").read_text())
    for name in ("h100-sxm", "hbm-pim", "systolic-128x128")
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("device-props")


def leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(leaves(value, (*prefix, key)))
        out.append((*prefix, key))
    return out


SCALARS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e-200),
    st.sampled_from([0, 1, -1, 0.5, 1e-300, 5e-324, 1e300, 2**53, 2**53 + 1, 1e9]),
    st.text(max_size=10),
    st.booleans(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=6), SCALARS, max_size=3),
)


def in_ranges(section: Section) -> None:
    """Every number of a loaded device lies in its field's range (and is finite)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, Section):
            in_ranges(value)
            continue
        lo = f.metadata.get("ge")
        hi = f.metadata.get("le")
        items: list[Any]
        if isinstance(value, FloatTable):
            items = list(value.values())
        elif isinstance(value, tuple):
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, int | float) and not isinstance(item, bool):
                assert math.isfinite(item), (f.name, item)
                if lo is not None:
                    assert item >= lo, (f.name, item)
                if hi is not None:
                    assert item <= hi, (f.name, item)


@SETTINGS
@given(
    base=st.sampled_from(sorted(BASES)),
    picks=st.lists(st.tuples(st.integers(0, 10**6), VALUES), min_size=1, max_size=3),
)
def test_arbitrary_values_in_known_keys(
    folder: Path, base: str, picks: list[tuple[int, Any]]
) -> None:
    data = tomllib.loads(toml_dumps(BASES[base]))
    paths = leaves(data)
    for index, value in picks:
        *heads, last = paths[index % len(paths)]
        node: Any = data
        for head in heads:
            node = node.get(head) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[last] = value
    path = folder / f"{base}.toml"
    path.write_text(toml_dumps(data), encoding="utf-8", errors="surrogatepass")
    try:
        device = load_device(path)
    except DeviceFileError as exc:
        assert str(exc).startswith(str(path)) and exc.expected, exc
    else:
        assert isinstance(device, Device)
        in_ranges(device)


OPTIONS = [
    "gpgpu_n_clusters",
    "gpgpu_n_cores_per_cluster",
    "gpgpu_clock_domains",
    "gpgpu_shader_core_pipeline",
    "gpgpu_shader_cta",
    "gpgpu_num_sched_per_core",
    "gpgpu_compute_capability_major",
    "gpgpu_shader_registers",
    "gpgpu_registers_per_block",
    "gpgpu_cache:dl1",
    "gpgpu_unified_l1d_size",
    "gpgpu_shmem_option",
    "gpgpu_l1_latency",
    "gpgpu_smem_latency",
    "gpgpu_shmem_num_banks",
    "gpgpu_shmem_size",
    "gpgpu_n_mem",
    "gpgpu_n_sub_partition_per_mchannel",
    "gpgpu_cache:dl2",
    "gpgpu_n_chiplet_partition",
    "gpgpu_l2_rop_latency",
    "gpgpu_dram_buswidth",
    "dram_dual_bus_interface",
    "gpgpu_dram_burst_length",
    "dram_data_command_freq_ratio",
    "dram_latency",
    "gpgpu_dram_timing_opt",
    "some_new_option",
]
CONFIG_VALUE = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "2",
            "32",
            "1e300",
            "nan",
            "inf",
            "1.5",
            "banana",
            "",
            '"',
            "1:2",
            "1132:1132:1132:850",
            "2048:32",
            "S:4:128:64,L",
            "N:0:0:0",
            "S:99999999999:128:4",
            "nbk=16:CCD=1",
            "nbk=0:RC=x",
            "RC=1:RAS=100:RP=100",
            "0,8,16",
            "#",
            "\x00",
            "é",
        ]
    ),
    st.text(alphabet="0123456789:,=.-eSNa #\"'", max_size=12),
    st.integers(-(1 << 70), 1 << 70).map(str),
)


@SETTINGS
@given(changes=st.lists(st.tuples(st.sampled_from(OPTIONS), CONFIG_VALUE), max_size=4))
def test_arbitrary_config_values(folder: Path, changes: list[tuple[str, str]]) -> None:
    path = folder / "gpgpusim.config"
    text = CONFIG + "".join(f"-{option} {value}\n" for option, value in changes)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        res = import_config(path, name="x", base=devices.get("v100-sxm2"))
    except DeviceFileError as exc:
        assert str(exc).startswith(str(path)), exc
    except SimgpuError as exc:  # pragma: no cover - every config problem is a DeviceFileError
        raise AssertionError(f"not a DeviceFileError: {exc!r}") from exc
    else:
        assert res.device is not None and devices.loads(res.toml) == res.device
        in_ranges(res.device)


@SETTINGS
@given(text=st.text(alphabet='-abcgpu_:=., "#\n\t0123456789\x00\x7fé', max_size=200))
def test_arbitrary_config_text(folder: Path, text: str) -> None:
    path = folder / "text.config"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = parse_config(path)
    except DeviceFileError as exc:
        assert str(exc).startswith(str(path)), exc
    else:
        assert all(isinstance(v, str) and line >= 1 for v, line in cfg.options.values())
