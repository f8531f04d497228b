"""Turn an Accel-Sim/GPGPU-Sim ``gpgpusim.config`` into a simgpu device file.

The config gives the SM organisation, clocks, register file, cache geometry strings
(``S|N:nsets:line:assoc,...``; the L2 one per memory sub-partition), latencies (the L2 and DRAM
ones are *increments* over the level above, in their own clock domain) and DRAM timings in
command clocks. Everything a simgpu device needs that the config does not hold (vendor, product
name, peak rates, DRAM type, host link, power, ...) is taken from a ``base`` device file, and the
generated file says so value by value. :func:`import_config` returns the TOML text and the list of
config options that were not mapped, so none is dropped silently.

The result always loads: a config value that is not a number where one is needed names the
config's file, line and option; DRAM timings that break a JEDEC rule Accel-Sim does not check
(``tRC >= tRAS + tRP``, a column command no faster than its burst) are raised to the smallest
value the rule allows, and the file's comment and the command's output say so; anything else
that would make an invalid device file is an error naming the device key, the value, the rule and
where the value came from. ``simgpu devices import-accelsim`` writes only such a file, atomically,
and never over an existing one.

Accel-Sim's maintainers note that their A100/H100 configurations are not correlated against
hardware (``shared/data/accelsim/README.md``): an imported file is a starting point for
structure, not a source of measured latencies.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgpu.devices.load import load_device, loads_device, to_dict, toml_key, toml_value
from simgpu.devices.registry import Registry
from simgpu.devices.spec import INT_CAP, NAME_PATTERN, DeviceSpec
from simgpu.errors import DeviceFileError, SimgpuError
from simgpu.io import OutputError, UnusableFile, new_file, read_input

__all__ = [
    "AccelSimConfig",
    "parse_config",
    "import_config",
    "ImportResult",
    "cache_geometry",
    "check_device_name",
    "write_new_device_file",
    "MAX_CONFIG_BYTES",
]

#: Largest config read. Accel-Sim's tested configs are 5-10 KiB (150-210 lines of
#: ``-option value``); 1 MiB is a hundred times that.
MAX_CONFIG_BYTES = 1 << 20
#: An option name as GPGPU-Sim's option parser registers them (``gpgpu_cache:dl1``).
_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_:.]*")
#: Largest count or size taken from a config (cores, sets, bytes, ...): beyond any hardware, and
#: small enough that the products the importer forms stay exact.
_COUNT_MAX = 1 << 30


def _shown(text: str) -> str:
    """Config text as it may appear inside a TOML comment: control characters (which TOML
    forbids there, and a line break would end the comment) written as escapes."""
    return "".join(
        c if (c == "\t" or (c.isprintable() and c not in "\u2028\u2029")) else repr(c)[1:-1]
        for c in text
    )


@dataclass
class AccelSimConfig:
    """Options of one ``gpgpusim.config``: name -> (raw value, line number).

    The accessors check each value they read (a whole number, a finite number, a list, a cache
    geometry) and raise :class:`~simgpu.errors.DeviceFileError` naming ``file:line``, the option,
    the value and what was expected; every option read is recorded in :attr:`used`.
    """

    path: str
    options: dict[str, tuple[str, int]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def get(self, name: str) -> str | None:
        v = self.options.get(name)
        return None if v is None else v[0]

    def where(self, name: str) -> str:
        line = self.options.get(name, ("", 0))[1]
        return f"{self.path}:{line}" if line else self.path

    def require(self, name: str) -> str:
        self.used.add(name)
        v = self.get(name)
        if v is None:
            raise DeviceFileError(self.path, f"-{name}", None, "present in the Accel-Sim config")
        return v

    def _error(self, name: str, raw: str, expected: str) -> DeviceFileError:
        return DeviceFileError(self.where(name), f"-{name}", raw, expected)

    def number(self, name: str, *, lo: float = 1e-9, hi: float = 1e9) -> float:
        """The option's first word as a finite number in ``[lo, hi]``."""
        raw = self.require(name)
        words = raw.split()
        value = _to_number(words[0]) if words else None
        if value is None or not lo <= value <= hi:
            raise self._error(name, raw, f"a number from {lo:g} to {hi:g}")
        return value

    def whole(self, name: str, *, lo: int = 1, hi: int = _COUNT_MAX) -> int:
        """The option's first word as a whole number in ``[lo, hi]`` (``4`` or ``4.0``)."""
        raw = self.require(name)
        words = raw.split()
        value = _to_whole(words[0]) if words else None
        if value is None or not lo <= value <= hi:
            raise self._error(name, raw, f"a whole number from {lo} to {hi}")
        return value

    def numbers(
        self, name: str, sep: str, *, lo: float = 1e-9, hi: float = 1e9, count: int | None = None
    ) -> list[float]:
        """``a<sep>b<sep>...`` as finite numbers in ``[lo, hi]`` (``count`` of them if given)."""
        raw = self.require(name)
        parts = [p.strip() for p in raw.split(sep) if p.strip()]
        values = [_to_number(p) for p in parts]
        if (
            not values
            or (count is not None and len(values) != count)
            or any(v is None or not lo <= v <= hi for v in values)
        ):
            many = f"{count} " if count is not None else ""
            raise self._error(
                name, raw, f"{many}numbers from {lo:g} to {hi:g} separated by {sep!r}"
            )
        return [float(v) for v in values if v is not None]

    def wholes(
        self, name: str, sep: str, *, lo: int = 1, hi: int = _COUNT_MAX, count: int | None = None
    ) -> list[int]:
        """``a<sep>b<sep>...`` as whole numbers in ``[lo, hi]`` (``count`` of them if given)."""
        raw = self.require(name)
        parts = [p.strip() for p in raw.split(sep) if p.strip()]
        values = [_to_whole(p) for p in parts]
        if (
            not values
            or (count is not None and len(values) != count)
            or any(v is None or not lo <= v <= hi for v in values)
        ):
            many = f"{count} " if count is not None else ""
            raise self._error(
                name, raw, f"{many}whole numbers from {lo} to {hi} separated by {sep!r}"
            )
        return [v for v in values if v is not None]

    def assignments(self, name: str) -> dict[str, int]:
        """``k=v:k=v:...`` (``-gpgpu_dram_timing_opt``) with whole values from 1 to 10^6."""
        raw = self.require(name)
        out: dict[str, int] = {}
        for part in raw.replace(" ", "").split(":"):
            if not part:
                continue
            key, sep, text = part.partition("=")
            value = _to_whole(text) if sep else None
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or value is None:
                raise self._error(name, raw, f"NAME=VALUE pairs separated by ':' (not {part!r})")
            if not 1 <= value <= 1_000_000:
                raise self._error(name, raw, f"{key} a whole number from 1 to 1000000")
            out[key] = value
        return out

    def cache(self, name: str) -> tuple[bool, int, int, int]:
        """A cache geometry option: (sectored, sets, line bytes, ways); see
        :func:`cache_geometry`."""
        return cache_geometry(self.require(name), self.where(name), f"-{name}")


def _to_number(text: str) -> float | None:
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _to_whole(text: str) -> int | None:
    value = _to_number(text)
    if value is None or not value.is_integer() or abs(value) > INT_CAP:
        return None
    return int(value)


def parse_config(path: str | Path) -> AccelSimConfig:
    """Read ``-option value`` lines (``#`` comments; quoted values may span lines).

    The file must be a regular file of at most :data:`MAX_CONFIG_BYTES`, in UTF-8 (configs are
    ASCII); every problem is a :class:`~simgpu.errors.DeviceFileError` naming the file and line.
    """
    path = Path(path)
    source = str(path)
    try:
        data = read_input(path, MAX_CONFIG_BYTES, "an Accel-Sim config")
    except UnusableFile as exc:
        raise DeviceFileError(source, "<file>", exc.got, exc.expected) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
        raise DeviceFileError(
            f"{source}:{bad_line}",
            "<text>",
            data[max(0, exc.start - 10) : exc.end + 10],
            "UTF-8 text",
        ) from None
    cfg = AccelSimConfig(source)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        n = i + 1
        line = lines[i].split("#", 1)[0].strip() if not lines[i].lstrip().startswith('"') else ""
        i += 1
        if not line:
            continue
        if not line.startswith("-"):
            raise DeviceFileError(f"{path}:{n}", "line", line, "'-option value'")
        name, _, value = line[1:].partition(" ")
        name = name.strip()
        if not _OPTION.fullmatch(name):
            raise DeviceFileError(
                f"{path}:{n}",
                "line",
                line,
                "'-option value' with an option name of letters, digits, '_', ':' and '.'",
            )
        value = value.strip()
        # A quoted value may continue on following lines until the closing quote.
        while value.count('"') % 2 == 1 and i < len(lines):
            value += lines[i].split("#", 1)[0].strip()
            i += 1
        if value.count('"') % 2 == 1:
            raise DeviceFileError(f"{path}:{n}", f"-{name}", value, "a closed quoted value")
        try:
            parts = shlex.split(value) if value else []
        except ValueError as exc:
            raise DeviceFileError(f"{path}:{n}", f"-{name}", value, "a valid value") from exc
        cfg.options[name] = (" ".join(parts), n)
    return cfg


_GEOM = re.compile(r"([SN]):(\d+):(\d+):(\d+)")


def cache_geometry(
    spec: str, where: str = "cache", option: str = "cache geometry"
) -> tuple[bool, int, int, int]:
    """``S:256:128:20,L:B:...`` -> (sectored, sets, line bytes, ways); sets, line and ways are
    whole numbers from 1 to 2^30."""
    m = _GEOM.match(spec.strip())
    if not m:
        raise DeviceFileError(where, option, spec, "'S|N:sets:line:ways,...'")
    sets, line, ways = int(m.group(2)), int(m.group(3)), int(m.group(4))
    if not all(1 <= v <= _COUNT_MAX for v in (sets, line, ways)):
        raise DeviceFileError(
            where, option, spec, f"'S|N:sets:line:ways,...' with each from 1 to {_COUNT_MAX}"
        )
    return m.group(1) == "S", sets, line, ways


@dataclass
class ImportResult:
    """The generated device file and the device it loads as (:attr:`device`; None only for a
    draft, ``check=False``), the values raised to satisfy a rule Accel-Sim does not check
    (:attr:`adjusted`), and what could not be mapped."""

    toml: str
    device: DeviceSpec | None
    adjusted: list[str]
    mapped: dict[str, str]
    unmapped: list[str]


#: Options that describe simulator mechanics (statistics, PTX mode, power model switches),
#: not hardware: reported separately from unmapped hardware options.
_SIMULATOR_ONLY = re.compile(
    r"^(gpgpu_ptx_|gpgpu_runtime_|gpgpu_memlatency_stat|enable_ptx_file|visualizer|power_|"
    r"gpgpu_perf_sim|gpgpu_stack_size|gpgpu_heap_size|gpgpu_flush_|gpgpu_deadlock|"
    r"gpgpu_max_concurrent_kernel|gpgpu_kernel_launch_latency|gpgpu_TB_launch_latency|"
    r"gpgpu_simple_dram|trace_|gpgpu_max_insn|gpgpu_occupancy_sm_number|network_mode|"
    r"inter_config_file|gpgpu_clock_gated|gpgpu_cache:dl2_texture_only|gpgpu_perfect_)"
)


def import_config(
    config_path: str | Path,
    *,
    name: str,
    base: DeviceSpec,
    full_name: str | None = None,
    check: bool = True,
) -> ImportResult:
    """Map an Accel-Sim config onto a copy of ``base``; see the module docstring.

    Raises :class:`~simgpu.errors.DeviceFileError` (naming the config) when the config cannot
    be read or mapped, or (with ``check``) when the result would not be a valid device file.
    ``check=False`` returns the text anyway, with ``device`` None when it does not load: a draft
    to inspect the mapping, which the command never writes.
    """
    check_device_name(name, "name")
    cfg = parse_config(config_path)
    src = _shown(Path(config_path).parent.name + "/" + Path(config_path).name)
    data: dict[str, Any] = to_dict(base)
    notes: dict[str, str] = {}

    def put(path: str, value: Any, note: str) -> None:
        d = data
        keys = path.split(".")
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
        notes[path] = f"accelsim {src}: {note}"

    data["name"] = name
    notes["name"] = "file name without .toml"
    data["full_name"] = full_name or f"{base.full_name} (structure from Accel-Sim {src})"
    notes["full_name"] = "imported; see the per-key comments"
    data["base_model"] = base.name
    notes["base_model"] = "values not in the Accel-Sim config come from this device file"
    data.pop("calibration_run", None)

    # -- compute ---------------------------------------------------------------------------------
    clusters = cfg.whole("gpgpu_n_clusters")
    per = cfg.whole("gpgpu_n_cores_per_cluster") if cfg.get("gpgpu_n_cores_per_cluster") else 1
    sms = clusters * per
    put("compute.sm_count", sms, f"-gpgpu_n_clusters {clusters} x -gpgpu_n_cores_per_cluster {per}")
    clocks = cfg.numbers("gpgpu_clock_domains", ":", lo=1.0, hi=1e6)
    core, icnt, l2clk, dramclk = (clocks + [clocks[-1]] * 4)[:4]
    put("compute.boost_clock_MHz", core, f"-gpgpu_clock_domains core clock {core:g}")
    if base.compute.base_clock_MHz > core:
        put("compute.base_clock_MHz", core, "base clock capped at the config's core clock")
    threads, warp = cfg.wholes("gpgpu_shader_core_pipeline", ":", count=2)
    put("compute.warp_size", warp, f"-gpgpu_shader_core_pipeline {threads}:{warp}")
    put("compute.max_threads_per_sm", threads, f"-gpgpu_shader_core_pipeline {threads}:{warp}")
    put("compute.max_warps_per_sm", threads // warp, "threads / warp size")
    put("compute.max_blocks_per_sm", cfg.whole("gpgpu_shader_cta"), "-gpgpu_shader_cta")
    put(
        "compute.warp_schedulers_per_sm",
        cfg.whole("gpgpu_num_sched_per_core"),
        "-gpgpu_num_sched_per_core",
    )
    if cfg.get("gpgpu_compute_capability_major"):
        cc = (
            f"{cfg.whole('gpgpu_compute_capability_major', lo=0, hi=99)}."
            f"{cfg.whole('gpgpu_compute_capability_minor', lo=0, hi=99)}"
        )
        put("compute_capability", cc, "-gpgpu_compute_capability_major/minor")
    lanes = base.compute.fp32_lanes_per_sm
    put(
        "compute.peak_fp32_TFLOPS",
        round(sms * lanes * 2 * core / 1e6, 3),
        f"derived: {sms} SMs x {lanes} FP32 lanes (base) x 2 x {core:g} MHz",
    )
    if base.compute.fp64_lanes_per_sm:
        l64 = base.compute.fp64_lanes_per_sm
        put(
            "compute.peak_fp64_TFLOPS",
            round(sms * l64 * 2 * core / 1e6, 4),
            f"derived: {sms} SMs x {l64} FP64 lanes (base) x 2 x {core:g} MHz",
        )
    scale = sms * core / (base.compute.sm_count * base.compute.boost_clock_MHz)
    for peak in (
        "peak_tf32_tensor_TFLOPS",
        "peak_fp16_tensor_TFLOPS",
        "peak_bf16_tensor_TFLOPS",
        "peak_fp8_tensor_TFLOPS",
        "peak_fp64_tensor_TFLOPS",
    ):
        v = getattr(base.compute, peak)
        if v is not None:
            put(
                f"compute.{peak}",
                round(v * scale, 3),
                f"derived: base value x (SMs x clock) / base (SMs x clock) = x{scale:.4g}",
            )

    # -- register file ----------------------------------------------------------------------------
    regs = cfg.whole("gpgpu_shader_registers")
    put("register_file.size_per_sm_KiB", regs * 4 // 1024, f"-gpgpu_shader_registers {regs} x 4 B")
    if cfg.get("gpgpu_registers_per_block"):
        put(
            "register_file.max_registers_per_block",
            cfg.whole("gpgpu_registers_per_block"),
            "-gpgpu_registers_per_block",
        )

    # -- L1 / shared ------------------------------------------------------------------------------
    sectored, sets, line, ways = cfg.cache("gpgpu_cache:dl1")
    l1_kib = (
        cfg.whole("gpgpu_unified_l1d_size")
        if cfg.get("gpgpu_unified_l1d_size")
        else (sets * line * ways // 1024)
    )
    put("l1.size_per_sm_KiB", l1_kib, "-gpgpu_unified_l1d_size (KiB)")
    put("l1.line_bytes", line, f"-gpgpu_cache:dl1 line {line}")
    if sectored:
        put("l1.sector_bytes", 32, "-gpgpu_cache:dl1 S (sectored: 32 B sectors)")
    put(
        "l1.ways",
        l1_kib * 1024 // (sets * line),
        f"unified size / (-gpgpu_cache:dl1 {sets} sets x {line} B): the adaptive L1 keeps the"
        " set count and scales the ways",
    )
    if cfg.get("gpgpu_shmem_option"):
        opts = sorted(set(cfg.wholes("gpgpu_shmem_option", ",", lo=0)))
        put("l1.shared_carveouts_KiB", opts, "-gpgpu_shmem_option")
    put("l1.hit_latency_cycles", cfg.number("gpgpu_l1_latency"), "-gpgpu_l1_latency (core cycles)")
    if cfg.get("gpgpu_smem_latency"):
        put("l1.shared_latency_cycles", cfg.number("gpgpu_smem_latency"), "-gpgpu_smem_latency")
    if cfg.get("gpgpu_shmem_num_banks"):
        put("l1.shared_banks", cfg.whole("gpgpu_shmem_num_banks"), "-gpgpu_shmem_num_banks")
    if cfg.get("gpgpu_shmem_size"):
        largest = cfg.whole("gpgpu_shmem_size") // 1024
        put(
            "compute.max_shared_memory_per_block_KiB",
            float(largest - 1),
            f"-gpgpu_shmem_size {largest} KiB less the 1 KiB the driver reserves per block",
        )

    # -- L2 -------------------------------------------------------------------------------------
    n_mem = cfg.whole("gpgpu_n_mem")
    subp = cfg.whole("gpgpu_n_sub_partition_per_mchannel")
    s2, sets2, line2, ways2 = cfg.cache("gpgpu_cache:dl2")
    slices = n_mem * subp
    put("l2.slices", slices, f"-gpgpu_n_mem {n_mem} x -gpgpu_n_sub_partition_per_mchannel {subp}")
    put("l2.ways", ways2, "-gpgpu_cache:dl2 ways")
    put("l2.line_bytes", line2, "-gpgpu_cache:dl2 line")
    if s2:
        put("l2.sector_bytes", 32, "-gpgpu_cache:dl2 S (sectored)")
    put(
        "l2.size_MiB",
        slices * sets2 * line2 * ways2 / 2**20,
        f"{slices} slices x {sets2} sets x {line2} B x {ways2} ways",
    )
    parts = cfg.whole("gpgpu_n_chiplet_partition") if cfg.get("gpgpu_n_chiplet_partition") else 1
    put("l2.partitions", parts, "-gpgpu_n_chiplet_partition (absent: 1)")
    l1_lat = cfg.number("gpgpu_l1_latency")
    rop = cfg.number("gpgpu_l2_rop_latency", lo=0.0)
    l2_lat = l1_lat + rop * core / l2clk
    put(
        "l2.near_hit_latency_cycles",
        round(l2_lat, 1),
        f"incremental: -gpgpu_l1_latency {l1_lat:g} + -gpgpu_l2_rop_latency {rop:g} L2 cycles"
        f" x {core:g}/{l2clk:g} MHz",
    )
    if parts == 1:
        data["l2"].pop("far_hit_latency_cycles", None)
    elif base.l2.far_hit_latency_cycles is not None:
        far = l2_lat * base.l2.far_hit_latency_cycles / base.l2.near_hit_latency_cycles
        put(
            "l2.far_hit_latency_cycles",
            round(far, 1),
            "no far-partition latency in Accel-Sim: near latency x base far/near ratio",
        )

    # -- DRAM --------------------------------------------------------------------------------------
    bus_bytes = cfg.whole("gpgpu_dram_buswidth")
    dual = cfg.whole("dram_dual_bus_interface", lo=0) if cfg.get("dram_dual_bus_interface") else 0
    bits = n_mem * bus_bytes * 8
    put(
        "dram.bus_width_bits",
        bits,
        f"-gpgpu_n_mem {n_mem} x -gpgpu_dram_buswidth {bus_bytes} B x 8 (assumption:"
        f" -dram_dual_bus_interface {dual} splits a channel's bus, it does not widen it)",
    )
    per_pkg = base.dram.packages * base.dram.channel_width_bits
    if bits % per_pkg == 0:
        put(
            "dram.channels_per_package",
            bits // per_pkg,
            f"bus bits / ({base.dram.packages} packages x {base.dram.channel_width_bits}-bit"
            " channels of the base device)",
        )
    elif bits % (base.dram.channels_per_package * base.dram.channel_width_bits) == 0:
        per_package = base.dram.channels_per_package * base.dram.channel_width_bits
        put(
            "dram.packages",
            bits // per_package,
            f"bus bits / {per_package} bits per package ({base.dram.channels_per_package} x"
            f" {base.dram.channel_width_bits}-bit channels of the base device)",
        )
    burst = cfg.whole("gpgpu_dram_burst_length")
    ratio = (
        cfg.whole("dram_data_command_freq_ratio") if cfg.get("dram_data_command_freq_ratio") else 2
    )
    rate = dramclk * ratio / 1000.0
    put(
        "dram.data_rate_Gbps",
        round(rate, 4),
        f"DRAM clock {dramclk:g} MHz x -dram_data_command_freq_ratio {ratio}",
    )
    put("dram.peak_bandwidth_GBps", round(bits * rate / 8, 1), "derived: bus bits x data rate / 8")
    dram_lat = cfg.number("dram_latency", lo=0.0)
    total_ns = (l2_lat + dram_lat * core / l2clk) * 1000 / core
    put(
        "dram.unloaded_latency_ns",
        round(total_ns, 1),
        f"incremental: L2 hit + -dram_latency {dram_lat:g} L2 cycles, at {core:g} MHz",
    )
    t = cfg.assignments("gpgpu_dram_timing_opt")
    tck_ps = 1e6 / dramclk
    put("dram.timing.tCK_ps", round(tck_ps, 2), f"1 / DRAM clock {dramclk:g} MHz")
    put(
        "dram.timing.tBL",
        max(1, burst // ratio),
        f"-gpgpu_dram_burst_length {burst} / -dram_data_command_freq_ratio {ratio}",
    )
    names = {
        "CL": "tCL",
        "WL": "tCWL",
        "RCD": "tRCD",
        "RP": "tRP",
        "RAS": "tRAS",
        "RC": "tRC",
        "CCD": "tCCD_S",
        "CCDL": "tCCD_L",
        "RRD": "tRRD_S",
        "WR": "tWR",
        "CDLR": "tWTR_S",
        "RTPL": "tRTP",
    }
    unmapped_timing = []
    for k, v in t.items():
        if k in names:
            put(f"dram.timing.{names[k]}", v, f"-gpgpu_dram_timing_opt {k}={v}")
        elif k == "nbkgrp":
            put("dram.bank_groups", v, f"-gpgpu_dram_timing_opt nbkgrp={v}")
        elif k == "nbk":
            groups = t.get("nbkgrp", 1)
            put("dram.banks_per_group", v // groups, f"nbk={v} / nbkgrp={groups}")
        else:
            unmapped_timing.append(f"gpgpu_dram_timing_opt {k}={v}")
    if "RRD" in t:
        put(
            "dram.timing.tRRD_L",
            max(t["RRD"], data["dram"]["timing"].get("tRRD_L", 0)),
            "no separate RRD_L in Accel-Sim: max(RRD, base)",
        )
    if "CDLR" in t:
        put(
            "dram.timing.tWTR_L",
            max(t["CDLR"], data["dram"]["timing"].get("tWTR_L", 0)),
            "no separate WTR_L in Accel-Sim: max(CDLR, base)",
        )

    used = cfg.used
    unmapped = (
        sorted(o for o in cfg.options if o not in used and not _SIMULATOR_ONLY.match(o))
        + unmapped_timing
    )
    simulator_only = sorted(o for o in cfg.options if _SIMULATOR_ONLY.match(o))

    adjusted = _reconcile_timing(data, notes, base.name)
    text = _render(data, notes, base.name, src, unmapped, simulator_only)
    try:
        device = loads_device(text, source=f"<{name}.toml>")
    except DeviceFileError as exc:
        if not check:
            return ImportResult(text, None, adjusted, dict(notes), unmapped)
        origin = notes.get(exc.key, f"from the base device {base.name}.toml")
        raise DeviceFileError(
            cfg.path,
            exc.key,
            exc.value,
            f"{exc.expected} [the imported value: {origin}; nothing was written: choose a --base"
            " whose organisation fits the config, or edit the config]",
        ) from None
    if not isinstance(device, DeviceSpec):  # pragma: no cover - the base is a GPU
        raise SimgpuError(f"{cfg.path}: the imported device is not a GPU")
    return ImportResult(text, device, adjusted, dict(notes), unmapped)


def _reconcile_timing(data: dict[str, Any], notes: dict[str, str], base: str) -> list[str]:
    """Raise DRAM timings that break a rule simgpu checks but Accel-Sim does not, to the
    smallest value the rule allows; the key's comment says so. Returns one line per change."""
    t = data["dram"]["timing"]
    changes: list[str] = []

    def at_least(key: str, floor: int, rule: str) -> None:
        if t[key] < floor:
            path = f"dram.timing.{key}"
            was = notes.get(path, f"from {base}.toml")
            notes[path] = f"{was}; raised from {t[key]} to {floor}: {rule}"
            changes.append(f"{path} raised from {t[key]} to {floor} ({rule})")
            t[key] = floor

    at_least("tRAS", t["tRCD"], "tRAS >= tRCD, a row opens before it closes")
    at_least("tRC", t["tRAS"] + t["tRP"], "JEDEC tRC >= tRAS + tRP, not checked by Accel-Sim")
    at_least("tCCD_S", t["tBL"], "a column command cannot repeat faster than its burst, tBL")
    at_least("tCCD_L", t["tCCD_S"], "tCCD_L >= tCCD_S")
    at_least("tRRD_L", t["tRRD_S"], "tRRD_L >= tRRD_S")
    at_least("tWTR_L", t["tWTR_S"], "tWTR_L >= tWTR_S")
    return changes


def _render(
    data: dict[str, Any],
    notes: dict[str, str],
    base: str,
    src: str,
    unmapped: list[str],
    simulator_only: list[str],
) -> str:
    lines = [
        f"# Imported from the Accel-Sim config {src} by `simgpu devices import-accelsim`.",
        f"# Keys without an 'accelsim' comment are copied from the base device file {base}.toml",
        "# (see its comments for their sources). Accel-Sim's A100/H100 configs are not",
        "# correlated against hardware: use them for structure, published figures for latencies.",
        "# Hardware options in the config that have no simgpu key (not mapped):",
    ]
    lines += [f"#   -{_shown(o)}" for o in unmapped] or ["#   (none)"]
    lines.append(f"# Simulator-only options ignored: {len(simulator_only)}")
    lines.append("")

    def emit(mapping: dict[str, Any], path: list[str]) -> None:
        scalars = [(k, v) for k, v in mapping.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in mapping.items() if isinstance(v, dict)]
        if path:
            lines.append("")
            lines.append("[" + ".".join(toml_key(p) for p in path) + "]")
        for k, v in scalars:
            full = ".".join([*path, k])
            note = notes.get(full, f"from {base}.toml")
            lines.append(f"{toml_key(k)} = {toml_value(v)}  # {_shown(note)}")
        for k, v in tables:
            if k == "energy_pJ" or not v:
                if v:
                    lines.append("")
                    lines.append("[" + ".".join(toml_key(p) for p in [*path, k]) + "]")
                    lines.append(f"# from {base}.toml")
                    for kk, vv in v.items():
                        lines.append(f"{toml_key(kk)} = {toml_value(vv)}")
                continue
            emit(v, [*path, k])

    emit(data, [])
    return "\n".join(lines) + "\n"


# --- the command ---------------------------------------------------------------------------------


def check_device_name(name: str, option: str = "--name") -> str:
    """``name`` if it is a device name (a plain file stem, :data:`NAME_PATTERN`); else
    :class:`~simgpu.errors.SimgpuError`. A name is never a path: it is checked before any file
    name is built from it."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise SimgpuError(
            f"{option} {name!r}: expected a device name, not a path: lower-case letters, digits,"
            " '.', '_' and '-', starting with a letter or digit, at most 128 characters (the"
            " file is NAME.toml)"
        )
    return name


def _output_path(out: str | None, name: str) -> Path:
    """Where ``--out`` puts the device file of ``name``: ``NAME.toml`` in the current folder,
    ``DIR/NAME.toml`` for a folder, or the file named (which must be ``NAME.toml``, since a
    device file is named after its device)."""
    if out is None or out == "":
        return Path(f"{name}.toml")
    target = Path(out)
    if target.is_dir():
        return target / f"{name}.toml"
    if target.name != f"{name}.toml":
        raise SimgpuError(
            f"--out {out}: a device file is named after its device: expected a file named"
            f" {name}.toml (or a folder to put it in)"
        )
    folder = target.parent
    if not folder.is_dir():
        raise SimgpuError(f"--out {out}: folder {str(folder)!r} does not exist")
    return target


def write_new_device_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, never over an existing file (also not one that
    appears while writing; :func:`simgpu.io.new_file`)."""
    try:
        with new_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OutputError as exc:
        if "already exists" in str(exc):
            raise SimgpuError(f"{path}: exists; device files are never overwritten") from None
        raise


def add_import_command(sub: Any) -> None:
    """Register ``simgpu devices import-accelsim`` on the ``devices`` sub-parsers."""
    p = sub.add_parser(
        "import-accelsim",
        help="turn an Accel-Sim gpgpusim.config into a device file",
        description=(__doc__.split("\n\n")[0] if __doc__ else "")
        + " Exit status: 0 when the file was written (it loads); 2 when nothing was written,"
        " with the reason (an unreadable or malformed config, a result that would not be a"
        " valid device file, a bad --name or --out, or an existing file).",
    )
    p.add_argument("config", metavar="GPGPUSIM_CONFIG", help="path to gpgpusim.config")
    p.add_argument(
        "--name",
        required=True,
        help="name of the new device, also its file stem: lower-case letters, digits, '.', '_',"
        " '-' (not a path)",
    )
    p.add_argument(
        "--base",
        required=True,
        metavar="DEVICE",
        help="device whose values fill what the config lacks (name or .toml)",
    )
    p.add_argument("--full-name", default=None, help="product name for the new file")
    p.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="a folder to write NAME.toml in, or the file NAME.toml itself (default: NAME.toml"
        " in the current folder); an existing file is never overwritten",
    )
    p.set_defaults(handler=cmd_import_accelsim)


def cmd_import_accelsim(args: Any) -> int:
    """Handler: write the device file (exit 0), or nothing (SimgpuError: exit 2)."""
    name = check_device_name(args.name)
    out = _output_path(args.out, name)
    if out.exists() or out.is_symlink():
        raise SimgpuError(f"{out}: exists; device files are never overwritten")
    ref = args.base
    base = (
        load_device(ref)
        if ref.endswith(".toml")
        else Registry(getattr(args, "models", None)).get_device(ref)
    )
    if not isinstance(base, DeviceSpec):
        raise SimgpuError(f"--base {ref}: a GPU device file is needed, got kind {base.kind!r}")
    res = import_config(args.config, name=name, base=base, full_name=args.full_name)
    write_new_device_file(out, res.toml)
    print(
        f"wrote {out}: {sum(1 for v in res.mapped.values() if 'accelsim' in v)} values from"
        f" {args.config}, the rest from {base.name}"
    )
    print(f"not mapped ({len(res.unmapped)}): " + ", ".join(f"-{o}" for o in res.unmapped))
    for change in res.adjusted:
        print(f"adjusted: {change}")
    return 0
