"""simgpu.devices: bundled models load and round-trip; bad files fail with file and key path."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgpu import devices
from simgpu.devices import (
    Device,
    DeviceSpec,
    FloatTable,
    Registry,
    dump,
    load,
    load_device,
    loads,
    loads_device,
    register_kind,
    to_dict,
    toml_dumps,
)
from simgpu.devices.load import _KINDS
from simgpu.devices.spec import spec_field
from simgpu.errors import DeviceFileError, SimgpuError

MODELS = Path(__file__).resolve().parent.parent / "models"
EXPECTED = {
    "a100-pcie-40gb",
    "a100-sxm-80gb",
    "h100-pcie",
    "h100-sxm",
    "h200",
    "rtx-4070",
    "rtx-4090",
    "rtx-a6000",
    "v100-sxm2",
}
BASE_TEXT = (MODELS / "h100-sxm.toml").read_text(encoding="utf-8")
BASE = tomllib.loads(BASE_TEXT)


# --- bundled models ----------------------------------------------------------------------------


def test_bundled_folder_holds_the_nine_gpus() -> None:
    assert devices.bundled_models_dir() == MODELS
    gpus = {n for n in devices.names() if devices.get_device(n).kind == "gpu"}
    hand_written = {n for n in gpus if devices.get_device(n).base_model is None}
    assert hand_written == EXPECTED
    for name in gpus - hand_written:  # calibrated models name their base and run
        spec = devices.get(name)
        assert spec.base_model in EXPECTED and spec.calibration_run
        assert name.startswith(f"{spec.base_model}-cal-")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_loads_dumps_and_reloads_equal(name: str) -> None:
    spec = devices.get(name)
    assert isinstance(spec, DeviceSpec)
    assert spec.name == name and spec.kind == "gpu"
    text = dump(spec)
    again = loads(text, source=f"<dump of {name}>")
    assert again == spec
    assert hash(again) == hash(spec)
    assert dump(again) == text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_value_in_a_model_has_a_source_comment(name: str) -> None:
    for number, line in enumerate((MODELS / f"{name}.toml").read_text().splitlines(), 1):
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            assert "#" in line and line.split("#", 1)[1].strip(), f"{name}.toml:{number}"


def test_known_figures_of_the_h100_sxm() -> None:
    spec = devices.get("h100-sxm")
    assert spec.compute.sm_count == 132
    assert spec.l2.size_MiB == 50.0 and spec.l2.size_bytes == 50 * 2**20
    assert spec.l2.sets_per_slice * spec.l2.slices * spec.l2.ways * 128 == spec.l2.size_bytes
    assert spec.dram.type == "HBM3" and spec.dram.packages == 5
    assert spec.dram.peak_bandwidth_GBps == 3350.0
    assert spec.dram.timing.ns("tRCD") == pytest.approx(26 * 0.764)
    assert spec.clock_MHz == 1980.0
    unloaded = spec.dram.timing.ns("tRP") + spec.dram.timing.ns("tRCD") + spec.dram.timing.ns("tCL")
    assert 45 < unloaded < 55  # dram_timings.md: nRP + nRCD + nCL = 48.1 ns for HBM3
    with pytest.raises(ValueError):
        spec.dram.timing.ns("tCK_ps")


def test_features_are_flat_and_complete() -> None:
    for device in (d for d in Registry().list() if d.kind == "gpu"):
        features = device.features()
        for key in ("name", "kind", "sm_count", "clock_MHz", "l2_size_MiB", "dram_type"):
            assert key in features
        for key in ("dram_bandwidth_GBps", "peak_fp16_TFLOPS", "peak_fp32_TFLOPS"):
            assert isinstance(features[key], float)
        assert devices.features(device) == features


def test_specs_are_frozen() -> None:
    spec = devices.get("v100-sxm2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.compute.sm_count = 1  # type: ignore[misc]


# --- registry -----------------------------------------------------------------------------------


def test_unknown_device_lists_the_available_ones() -> None:
    with pytest.raises(SimgpuError) as info:
        devices.get("h1000")
    assert "h1000" in str(info.value) and "h100-sxm" in str(info.value)


def test_models_folder_from_argument_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "h100-sxm.toml").write_text(BASE_TEXT, encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a model", encoding="utf-8")
    assert devices.names(tmp_path) == ["h100-sxm"]
    monkeypatch.setenv(devices.ENV_VAR, str(tmp_path))
    assert devices.models_dir() == tmp_path
    assert devices.names() == ["h100-sxm"]
    assert devices.get("h100-sxm") == load(MODELS / "h100-sxm.toml")
    assert devices.models_dir(MODELS) == MODELS  # an explicit folder wins over the variable
    with pytest.raises(SimgpuError, match="does not exist"):
        devices.names(tmp_path / "missing")


def test_registry_load_all_separates_broken_files(tmp_path: Path) -> None:
    (tmp_path / "h100-sxm.toml").write_text(BASE_TEXT, encoding="utf-8")
    (tmp_path / "broken.toml").write_text("name = 'broken'\n", encoding="utf-8")
    good, bad = Registry(tmp_path).load_all()
    assert [d.name for d in good] == ["h100-sxm"]
    assert len(bad) == 1 and "broken.toml" in str(bad[0])


# --- bad files ----------------------------------------------------------------------------------


def _edit(change: Callable[[dict[str, Any]], None]) -> str:
    data = copy.deepcopy(BASE)
    change(data)
    return toml_dumps(data)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *heads, last = path.split(".")
        for head in heads:
            data = data[head]
        data[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *heads, last = path.split(".")
        for head in heads:
            data = data[head]
        del data[last]

    return change


def _write(tmp_path: Path, text: str, name: str = "h100-sxm") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


BAD_EDITS = [
    ("wrong type", _set("compute.sm_count", "132"), "compute.sm_count", "an integer"),
    ("bool is not an int", _set("compute.sm_count", True), "compute.sm_count", "an integer"),
    ("float is not an int", _set("compute.sm_count", 132.0), "compute.sm_count", "an integer"),
    ("bool is not a number", _set("l2.size_MiB", False), "l2.size_MiB", "a number"),
    ("negative size", _set("l2.size_MiB", -50.0), "l2.size_MiB", ">= 0.0625"),
    ("zero clock", _set("compute.boost_clock_MHz", 0), "compute.boost_clock_MHz", ">= 100"),
    ("nan", _set("dram.peak_bandwidth_GBps", math.nan), "dram.peak_bandwidth_GBps", "finite"),
    ("huge int", _set("compute.sm_count", 10**30), "compute.sm_count", "<="),
    ("missing key", _delete("dram.timing.tRCD"), "dram.timing.tRCD", "required"),
    ("missing table", _delete("l1"), "l1", "required"),
    ("table is a value", _set("noc", 3), "noc", "a table"),
    ("unknown key", _set("compute.sm_cnt", 1), "compute.sm_cnt", "did you mean 'sm_count'"),
    ("unknown table", _set("turbo", {"x": 1}), "turbo", "no such key"),
    ("bad choice", _set("dram.type", "HBM9"), "dram.type", "one of"),
    ("bad list item", _set("l1.shared_carveouts_KiB", [0, "8"]), "l1.shared_carveouts_KiB[1]", ""),
    ("tRC < tRAS + tRP", _set("dram.timing.tRC", 40), "dram.timing.tRC", "tRAS + tRP"),
    ("L2 not whole sets", _set("l2.size_MiB", 50.1), "l2.size_MiB", "slices x ways"),
    ("base above boost", _set("compute.base_clock_MHz", 2500.0), "compute.base_clock_MHz", "<="),
    (
        "bandwidth vs bus",
        _set("dram.peak_bandwidth_GBps", 4000.0),
        "dram.peak_bandwidth_GBps",
        "bus_width_bits",
    ),
    ("fp32 peak", _set("compute.peak_fp32_TFLOPS", 90.0), "compute.peak_fp32_TFLOPS", "sm_count"),
    ("tCK vs rate", _set("dram.timing.tCK_ps", 625.0), "dram.timing.tCK_ps", "data_rate_Gbps"),
    ("far below near", _set("l2.far_hit_latency_cycles", 100.0), "l2.far_hit_latency_cycles", ""),
    ("far missing", _delete("l2.far_hit_latency_cycles"), "l2.far_hit_latency_cycles", "> 1"),
    ("pcie", _set("host_link.bandwidth_per_direction_GBps", 32.0), "host_link", "PCIe gen 5"),
    ("duplex above 1", _set("host_link.duplex_fraction", 1.5), "host_link.duplex_fraction",
     "<= 1"),
    ("negative staging", _set("host_link.staging_h2d_GBps", -3.0), "host_link.staging_h2d_GBps",
     ">= 0.01"),
    ("staging as text", _set("host_link.staging_d2h_GBps", "fast"), "host_link.staging_d2h_GBps",
     "a number"),
    ("no staging buffer", _set("host_link.staging_buffers", 0), "host_link.staging_buffers",
     ">= 1"),
    ("uncached without a cache", _set("host_link.staging_uncached_h2d_GBps", 5.0),
     "host_link.staging_uncached_h2d_GBps", "host_cache_MiB"),
    ("negative issue time", _set("host_link.copy_issue_us", -1.0), "host_link.copy_issue_us",
     ">= 0"),
    ("idle above tdp", _set("power.idle_W", 800.0), "power.idle_W", "tdp_W"),
    ("energy", _set("power.energy_pJ", {"l2_hit": -1.0}), "power.energy_pJ.l2_hit", ">= 0"),
    ("floor of no dtype", _set("host_link.library_call_floor_us", {"fp64": 20.0}),
     "host_link.library_call_floor_us.fp64", "fp32, tf32"),
    ("negative floor", _set("host_link.library_call_floor_us", {"fp32": -2.0}),
     "host_link.library_call_floor_us.fp32", ">= 0"),
    ("issue overhead", _set("compute.simt_issue_overhead", 9.0), "compute.simt_issue_overhead",
     "<= 4"),
    ("unknown kind", _set("kind", "fpga"), "kind", "'gpu'"),
    ("name pattern", _set("name", "H100 SXM"), "name", "matching"),
    ("smem vs carveout", _set("compute.max_shared_memory_per_block_KiB", 300.0), "compute", ""),
]


@pytest.mark.parametrize(
    ("label", "change", "key", "expected"), BAD_EDITS, ids=[b[0] for b in BAD_EDITS]
)
def test_bad_file_names_file_and_key(
    tmp_path: Path, label: str, change: Callable[[dict[str, Any]], None], key: str, expected: str
) -> None:
    path = _write(tmp_path, _edit(change))
    with pytest.raises(DeviceFileError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert info.value.path == str(path)
    assert info.value.key.startswith(key)
    assert expected in info.value.expected, message


def test_good_edit_still_loads(tmp_path: Path) -> None:
    text = _edit(_set("power.energy_pJ", {"l2_hit": 64, "dram_read_per_bit": 3.5}))
    spec = load(_write(tmp_path, text))
    assert spec.power.energy_pJ == {"l2_hit": 64.0, "dram_read_per_bit": 3.5}
    assert isinstance(spec.power.energy_pJ, FloatTable)
    assert loads(dump(spec)) == spec


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    text = BASE_TEXT.replace("sm_count = 132", "sm_count = ")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("sm_count = "))
    path = _write(tmp_path, text)
    with pytest.raises(DeviceFileError) as info:
        load(path)
    assert info.value.key == f"line {line}"
    assert str(path) in str(info.value) and "valid TOML" in str(info.value)


def test_name_must_match_file_stem(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE_TEXT, name="my-gpu")
    with pytest.raises(DeviceFileError) as info:
        load(path)
    assert info.value.key == "name" and "my-gpu" in info.value.expected
    assert loads(BASE_TEXT).name == "h100-sxm"  # text without a file has no stem to match


def test_unreadable_files_are_device_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceFileError, match="an existing file"):
        load(tmp_path / "absent.toml")
    with pytest.raises(DeviceFileError, match="not a directory"):
        load(tmp_path)
    path = tmp_path / "h100-sxm.toml"
    path.write_bytes(b"name = '\xff\xfe'\n")
    with pytest.raises(DeviceFileError, match="UTF-8"):
        load(path)


# --- other kinds --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ToyPim(Device):
    banks: int = spec_field("PIM banks", gt=0)


def test_other_kinds_register_and_load(tmp_path: Path) -> None:
    register_kind("toy-pim", _ToyPim)
    try:
        text = (
            'name = "toy"\nkind = "toy-pim"\nvendor = "Acme"\narchitecture = "X"\n'
            'full_name = "Acme Toy PIM"\nbanks = 16\n'
        )
        path = _write(tmp_path, text, name="toy")
        device = load_device(path)
        assert isinstance(device, _ToyPim) and device.banks == 16
        assert loads_device(dump(device)) == device
        assert device.features()["kind"] == "toy-pim"
        with pytest.raises(DeviceFileError) as info:
            load(path)  # a GPU was asked for
        assert info.value.key == "kind"
        with pytest.raises(DeviceFileError, match="banks"):
            loads_device(text.replace("banks = 16", "banks = 0"))
    finally:
        _KINDS.pop("toy-pim", None)
    with pytest.raises(TypeError):
        register_kind("bad", dict)  # type: ignore[arg-type]


# --- TOML writer --------------------------------------------------------------------------------


def test_toml_writer_round_trips_plain_data() -> None:
    data = {
        "s": 'quote " backslash \\ tab \t newline \n bell \x07',
        "i": -3,
        "f": 1e-5,
        "big": 1e300,
        "b": True,
        "l": [1, 2.5, "x", [True]],
        "empty": {},
        "t": {"x": 1, "sub": {"y": "z"}, "odd key": 2},
        "inline": [{"a": 1}],
    }
    assert tomllib.loads(toml_dumps(data)) == data
    assert to_dict(devices.get("h100-sxm"))["l2"]["size_MiB"] == 50.0


# --- corruption never escapes as anything but DeviceFileError -----------------------------------


def _paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out.extend(_paths(value, (*prefix, key)))
    return out


_PATHS = _paths(BASE)


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


_TABLE_PATHS = [()] + [p for p in _PATHS if isinstance(_get(BASE, p), dict)]

_SCALARS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=8), _SCALARS, max_size=3),
)


@st.composite
def _corrupted(draw: st.DrawFn) -> str:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(st.sampled_from(["delete", "retype", "negate", "insert", "scale"]))
        path = draw(st.sampled_from(_PATHS))
        *heads, last = path
        try:
            parent = _get(data, tuple(heads))
        except (KeyError, TypeError):
            continue
        if not isinstance(parent, dict) or last not in parent:
            continue
        if action == "delete":
            del parent[last]
        elif action == "retype":
            parent[last] = draw(_VALUES)
        elif action == "negate" and type(parent[last]) in (int, float):
            parent[last] = -parent[last]
        elif action == "scale" and type(parent[last]) in (int, float):
            parent[last] = parent[last] * draw(st.sampled_from([0, 2, 1000, 10**12, 0.5]))
        elif action == "insert":
            table = draw(st.sampled_from(_TABLE_PATHS))
            try:
                target = _get(data, table)
            except (KeyError, TypeError):
                continue
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=10))] = draw(_VALUES)
    return toml_dumps(data)


@st.composite
def _mangled(draw: st.DrawFn) -> str:
    text = BASE_TEXT
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(st.sampled_from(["cut", "insert", "swap", "duplicate", "truncate"]))
        if action in ("cut", "insert", "truncate"):
            at = draw(st.integers(min_value=0, max_value=len(text)))
            if action == "cut":
                text = text[:at] + text[at + draw(st.integers(min_value=1, max_value=40)) :]
            elif action == "insert":
                alphabet = st.sampled_from(list("=[]{}\"'#.,0123456789-\n tabex\x00\udc80é"))
                text = text[:at] + draw(st.text(alphabet=alphabet, max_size=12)) + text[at:]
            else:
                text = text[:at]
        else:
            lines = text.splitlines(keepends=True)
            if not lines:
                continue
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            if action == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            text = "".join(lines)
    return text


@pytest.fixture(scope="module")
def corrupt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corrupt")


def _load_or_device_file_error(folder: Path, text: str) -> None:
    path = folder / "h100-sxm.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        spec = load(path)
    except DeviceFileError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(spec, DeviceSpec)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_corrupted())
def test_structured_corruption_gives_only_device_file_errors(corrupt_dir: Path, text: str) -> None:
    _load_or_device_file_error(corrupt_dir, text)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_mangled())
def test_mangled_text_gives_only_device_file_errors(corrupt_dir: Path, text: str) -> None:
    _load_or_device_file_error(corrupt_dir, text)


def test_readme_documents_every_key() -> None:
    import typing

    readme = (MODELS / "README.md").read_text(encoding="utf-8")

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            hint = hints[field.name]
            if isinstance(hint, type) and issubclass(hint, devices.Section):
                assert f"`[{prefix}{field.name}]`" in readme, prefix + field.name
                walk(hint, f"{prefix}{field.name}.")
            else:
                assert f"| `{field.name}` |" in readme, prefix + field.name

    walk(DeviceSpec, "")
