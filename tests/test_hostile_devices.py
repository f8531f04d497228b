"""Hostile device files and Accel-Sim configs: one clean error naming the file, the key or line,
the value and what was expected; nothing written outside the place named, nothing overwritten,
no hang on a FIFO or /dev/zero, no physically absurd value accepted."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import signal
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from simgpu import devices
from simgpu.devices import accelsim, load, load_device
from simgpu.devices.accelsim import import_config, parse_config
from simgpu.devices.cli import main
from simgpu.devices.dataflow import DataflowSpec
from simgpu.devices.pim import PimSpec
from simgpu.devices.spec import DeviceSpec, Section
from simgpu.errors import DeviceFileError
from simgpu.io import OutputError, new_file

load_module = importlib.import_module("simgpu.devices.load")
MODELS = Path(__file__).resolve().parent.parent / "models"
H100 = (MODELS / "h100-sxm.toml").read_text(encoding="utf-8")

#: The options of Accel-Sim's QV100 config that the importer maps (with v100-sxm2 as the base,
#: the import loads), so these tests need no data beside the checkout.
CONFIG = """# a QV100-like config
-gpgpu_compute_capability_major 7
-gpgpu_compute_capability_minor 0
-gpgpu_n_clusters 80
-gpgpu_n_cores_per_cluster 1
-gpgpu_n_mem 32
-gpgpu_n_sub_partition_per_mchannel 2
-gpgpu_clock_domains 1132.0:1132.0:1132.0:850.0
-gpgpu_shader_registers 65536
-gpgpu_registers_per_block 65536
-gpgpu_shader_core_pipeline 2048:32
-gpgpu_shader_cta 32
-gpgpu_shmem_num_banks 32
-gpgpu_num_sched_per_core 4
-gpgpu_shmem_option 0,8,16,32,64,96
-gpgpu_unified_l1d_size 128
-gpgpu_cache:dl1  S:4:128:64,L:T:m:L:L,A:512:8,16:0,32
-gpgpu_l1_latency 20
-gpgpu_shmem_size 98304
-gpgpu_smem_latency 20
-gpgpu_cache:dl2 S:32:128:24,L:B:m:L:P,A:192:4,32:0,32
-gpgpu_l2_rop_latency 160
-dram_latency 100
-gpgpu_dram_buswidth 16
-gpgpu_dram_burst_length 2
-dram_data_command_freq_ratio 2  # HBM is DDR
-gpgpu_dram_timing_opt "nbk=16:CCD=1:RRD=3:RCD=12:RAS=28:RP=12:RC=40:
                        CL=12:WL=2:CDLR=3:WR=10:nbkgrp=4:CCDL=2:RTPL=3"
-dram_dual_bus_interface 1
"""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging: a blocking open or read is interrupted."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time."""
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- path escape ---------------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder three levels down (so ``../../x`` stays inside tmp_path, where it is
    seen), holding the config; the command runs there."""
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    (work / "gpgpusim.config").write_text(CONFIG)
    monkeypatch.chdir(work)
    return tmp_path


NAMES = [
    "../../evil",
    "../evil",
    "<absolute>",
    "a/b",
    "..",
    ".",
    "",
    "x" * 300,
    "Upper",
    "a\nb",
    "-rf",
    ".hidden",
    "a b",
    "nul\x00",
]


@pytest.mark.parametrize("name", NAMES)
def test_import_names_are_never_paths(
    sandbox: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    if name == "<absolute>":
        name = str(sandbox / "evil-abs")
    before = tree(sandbox)
    for out in ([], ["--out", "."], [f"--out={name}.toml"]):
        code, _, err = run(
            capsys,
            "import-accelsim",
            "gpgpusim.config",
            f"--name={name}",
            "--base",
            "v100-sxm2",
            *out,
        )
        assert code == 2 and "expected a device name, not a path" in err, err
        assert "Traceback" not in err
    assert tree(sandbox) == before


def test_import_writes_one_valid_file_where_named(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = sandbox / "a" / "b" / "work"
    (work / "models").mkdir()
    code, out, err = run(
        capsys,
        "import-accelsim",
        "gpgpusim.config",
        "--name",
        "qv",
        "--base",
        "v100-sxm2",
        "--out",
        "models",
    )
    assert code == 0 and err == "" and "wrote models/qv.toml" in out, err
    spec = load(work / "models" / "qv.toml")
    assert spec.name == "qv" and spec.compute.sm_count == 80
    # --out names the file itself: it must be NAME.toml, in a folder that exists
    for target, words in [
        ("other.toml", "a device file is named after its device"),
        ("no/such/qv2.toml", "does not exist"),
    ]:
        code, _, err = run(
            capsys,
            "import-accelsim",
            "gpgpusim.config",
            "--name",
            "qv2",
            "--base",
            "v100-sxm2",
            "--out",
            target,
        )
        assert code == 2 and words in err, err
    # never over an existing file, whatever it holds
    (work / "qv3.toml").write_text("keep me\n")
    code, _, err = run(
        capsys, "import-accelsim", "gpgpusim.config", "--name", "qv3", "--base", "v100-sxm2"
    )
    assert code == 2 and "never overwritten" in err
    assert (work / "qv3.toml").read_text() == "keep me\n"
    names = sorted(p.name for p in work.iterdir())
    assert names == ["gpgpusim.config", "models", "qv3.toml"]
    assert sorted(p.name for p in (work / "models").iterdir()) == ["qv.toml"]


def test_new_file_never_replaces_one_that_appears(tmp_path: Path) -> None:
    target = tmp_path / "x.toml"
    with pytest.raises(OutputError), new_file(target) as tmp:
        tmp.write_text("new")
        target.write_text("written meanwhile")
    assert target.read_text() == "written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.toml"]


def test_import_that_would_not_load_writes_nothing(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = sandbox / "a" / "b" / "work"
    before = tree(sandbox)
    # QV100's 4096-bit bus does not divide into the H100's 5 HBM3 stacks of 1024 bits... and its
    # DRAM clock does not fit HBM3: refused, naming the key, the value, the rule and the source
    code, out, err = run(
        capsys, "import-accelsim", "gpgpusim.config", "--name", "qv", "--base", "h100-sxm"
    )
    assert code == 2 and out == ""
    assert re.search(r"gpgpusim.config: dram\.\S+: got .*, expected .*nothing was written", err)
    assert tree(sandbox) == before
    assert not (work / "qv.toml").exists()


def test_config_text_cannot_inject_toml(tmp_path: Path) -> None:
    folder = tmp_path / "x\n[compute]\nsm_count = 1"
    folder.mkdir()
    (folder / "gpgpusim.config").write_text(CONFIG + "-gpgpu_odd\x7f_thing 1\n".replace("\x7f", ""))
    res = import_config(folder / "gpgpusim.config", name="qv", base=devices.get("v100-sxm2"))
    assert res.device is not None and res.device.compute.sm_count == 80
    assert devices.loads(res.toml).compute.sm_count == 80
    assert "x\\n[compute]\\nsm_count = 1" in res.toml


# --- config values -------------------------------------------------------------------------------


def config_with(option: str, value: str) -> str:
    lines, out, skip = CONFIG.splitlines(), [], False
    for line in lines:
        if skip:
            skip = '"' not in line
            continue
        if line.startswith(f"-{option} "):
            out.append(f"-{option} {value}")
            skip = line.count('"') % 2 == 1
            continue
        out.append(line)
    return "\n".join(out) + "\n"


OPTIONS = [
    "gpgpu_n_clusters",
    "gpgpu_clock_domains",
    "gpgpu_shader_core_pipeline",
    "gpgpu_n_mem",
    "gpgpu_l1_latency",
    "gpgpu_dram_burst_length",
    "dram_data_command_freq_ratio",
    "gpgpu_cache:dl1",
    "gpgpu_dram_timing_opt",
    "gpgpu_shmem_option",
    "gpgpu_shmem_size",
]


@pytest.mark.parametrize("value", ["banana", "nan", "inf", "0", "-1", "1e300", "1:2:3:4:5:6"])
@pytest.mark.parametrize("option", OPTIONS)
def test_config_values_are_checked(tmp_path: Path, option: str, value: str) -> None:
    path = tmp_path / "gpgpusim.config"
    path.write_text(config_with(option, value))
    try:
        res = import_config(path, name="x", base=devices.get("v100-sxm2"))
    except DeviceFileError as exc:
        assert str(exc).startswith(str(path)), exc
    else:  # a value that maps onto a plausible device is fine: the result loads
        assert res.device is not None and devices.loads(res.toml) == res.device


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("gpgpu_n_clusters", "nan", "a whole number from 1"),
        ("gpgpu_n_clusters", "0", "a whole number from 1"),
        ("gpgpu_clock_domains", "0", "numbers from 1 to 1e+06 separated by ':'"),
        ("gpgpu_clock_domains", "banana", "separated by ':'"),
        ("gpgpu_shader_core_pipeline", "2048", "2 whole numbers"),
        ("gpgpu_shader_core_pipeline", "2048:0", "2 whole numbers"),
        ("gpgpu_dram_burst_length", "0", "a whole number from 1"),
        ("dram_data_command_freq_ratio", "0", "a whole number from 1"),
        ("gpgpu_dram_timing_opt", "banana", "NAME=VALUE pairs"),
        ("gpgpu_dram_timing_opt", "nbk=0:RC=40", "nbk a whole number from 1"),
        ("gpgpu_cache:dl1", "S:0:128:64", "each from 1"),
        ("gpgpu_l1_latency", "inf", "a number from"),
    ],
)
def test_config_values_name_the_option_and_line(
    tmp_path: Path, option: str, value: str, words: str
) -> None:
    path = tmp_path / "gpgpusim.config"
    text = config_with(option, value)
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith(f"-{option} "))
    with pytest.raises(DeviceFileError) as info:
        import_config(path, name="x", base=devices.get("v100-sxm2"))
    assert str(info.value).startswith(f"{path}:{line}: -{option}: got "), info.value
    assert words in info.value.expected, info.value


@pytest.mark.parametrize(
    ("label", "data", "words"),
    [
        ("non-UTF-8", CONFIG.encode() + b"-gpgpu_x caf\xe9\n", "gpgpusim.config:30: <text>"),
        ("unclosed quote", CONFIG + '-gpgpu_foo "abc\n', "a closed quoted value"),
        ("option name", CONFIG + "-gpgpu_\x00evil 1\n", "an option name"),
        ("not an option", CONFIG + "sm_count = 3\n", "'-option value'"),
        ("empty", "", "-gpgpu_n_clusters: got None, expected present"),
    ],
)
def test_bad_configs_name_file_and_line(tmp_path: Path, label: str, data: object, words: str):
    path = tmp_path / "gpgpusim.config"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(str(data))
    with pytest.raises(DeviceFileError) as info:
        import_config(path, name="x", base=devices.get("v100-sxm2"))
    assert str(info.value).startswith(str(path)) and words in str(info.value), info.value


# --- bounded reads -------------------------------------------------------------------------------


def test_fifos_devices_and_folders_are_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    os.mkfifo(tmp_path / "gpgpusim.config")
    os.symlink("/dev/zero", tmp_path / "zero.toml")
    (tmp_path / "dir.toml").mkdir()
    for name, words in [
        ("fifo.toml", "a FIFO"),
        ("zero.toml", "a character device"),
        ("dir.toml", "not a directory"),
    ]:
        with deadline(10):
            code, out, err = run(capsys, "validate", str(tmp_path / name))
        assert code == 1 and words in err and "Traceback" not in err, err
    with deadline(10), pytest.raises(DeviceFileError, match="a FIFO"):
        parse_config(tmp_path / "gpgpusim.config")
    with deadline(10), pytest.raises(DeviceFileError, match="a character device"):
        parse_config(tmp_path / "zero.toml")


def test_oversize_files_are_refused_before_reading(tmp_path: Path) -> None:
    for path, limit in [
        (tmp_path / "h100-sxm.toml", load_module.MAX_DEVICE_FILE_BYTES),
        (tmp_path / "gpgpusim.config", accelsim.MAX_CONFIG_BYTES),
    ]:
        with path.open("wb") as handle:
            handle.truncate(limit + 1)  # sparse: its size is what the limit sees
    with deadline(10), pytest.raises(DeviceFileError, match="at most 1 MiB for a device file"):
        load_device(tmp_path / "h100-sxm.toml")
    with deadline(10), pytest.raises(DeviceFileError, match="at most 1 MiB for an Accel-Sim"):
        parse_config(tmp_path / "gpgpusim.config")


def test_non_utf8_device_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "h100-sxm.toml"
    path.write_bytes(H100.encode().replace(b"NVIDIA", b"NVID\xe9A", 1))
    line = next(i for i, t in enumerate(H100.splitlines(), 1) if "NVIDIA" in t)
    with pytest.raises(DeviceFileError) as info:
        load(path)
    assert info.value.key == f"line {line}" and info.value.expected == "UTF-8 text"


# --- plausible ranges ----------------------------------------------------------------------------


def with_value(text: str, key: str, value: str) -> str:
    section, name = key.rsplit(".", 1)
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]")
        elif current == section and stripped.split("=")[0].strip() == name:
            line = f"{name} = {value}"
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dram.size_GiB", "1e-300"),
        ("dram.size_GiB", "1e9"),
        ("compute.boost_clock_MHz", "1e5"),
        ("compute.sm_count", "100000"),
        ("l2.size_MiB", "1e-6"),
        ("l1.hit_latency_cycles", "0.001"),
        ("dram.unloaded_latency_ns", "0.5"),
        ("dram.timing.tCK_ps", "1"),
        ("dram.timing.tREFI", "9007199254740992"),
        ("host_link.latency_us", "1e-9"),
        ("power.tdp_W", "0.001"),
        ("power.tdp_W", "1e6"),
        ("register_file.size_per_sm_KiB", "1"),
    ],
)
def test_absurd_values_are_refused_with_the_range(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "h100-sxm.toml"
    path.write_text(with_value(H100, key, value), encoding="utf-8")
    with pytest.raises(DeviceFileError) as info:
        load(path)
    assert info.value.key == key, info.value
    assert "plausible range: models/README.md says why" in info.value.expected


def fields(cls: type[Section], prefix: str = "") -> Iterator[tuple[str, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if isinstance(args[0], type) and issubclass(args[0], Section):
            yield from fields(args[0], f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, f


def readme_bound(v: float) -> str:
    if float(v).is_integer():
        v = int(v)
    if isinstance(v, int):
        return f"{v:,}" if v >= 10000 else str(v)
    return f"{v:g}"


@pytest.mark.parametrize("cls", [DeviceSpec, PimSpec, DataflowSpec])
def test_every_number_has_a_plausible_range_documented(cls: type[Section]) -> None:
    """Each numeric field has a lower bound above zero (or zero where zero means none) and an
    upper bound, and models/README.md states them, with the reason, in the key's row."""
    readme = (MODELS / "README.md").read_text(encoding="utf-8")
    for key, f in fields(cls):
        meta = f.metadata
        if meta.get("choices") or meta.get("pattern") is not None:
            continue
        lo, hi = meta.get("ge"), meta.get("le")
        if lo is None and hi is None:
            continue  # strings and booleans
        assert lo is not None and hi is not None and meta.get("gt") is None, key
        assert hi < 2**53, key
        rows = [
            row
            for row in readme.splitlines()
            if row.startswith(f"| `{f.name}` |")
            and f"{readme_bound(lo)}..{readme_bound(hi)}" in row
        ]
        assert rows, f"{key}: no README row with {readme_bound(lo)}..{readme_bound(hi)}"
        assert all(row.rstrip().endswith("|") and row.split("|")[4].strip() for row in rows), key


def test_every_bundled_model_is_inside_the_ranges() -> None:
    assert len(devices.list_devices(MODELS)) == len(list(MODELS.glob("*.toml")))


def test_models_folder_entries_that_are_not_files_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "h100-sxm.toml").write_text(H100, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo.toml")
    os.symlink("/dev/zero", tmp_path / "zero.toml")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.toml")
    (tmp_path / "folder.toml").mkdir()
    with deadline(10):
        code, out, err = run(capsys, "--models", str(tmp_path), "list", "--json")
    assert code == 1 and '"h100-sxm"' in out
    for name, words in [("fifo", "a FIFO"), ("zero", "character device"), ("dangling", "nothing")]:
        assert f"{name}.toml: <file>: got '{words}" in err or (
            f"{name}.toml" in err and words in err
        )
    assert "folder.toml" not in err
