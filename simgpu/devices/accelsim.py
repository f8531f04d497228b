"""Turn an Accel-Sim/GPGPU-Sim ``gpgpusim.config`` into a simgpu device file.

The config gives the SM organisation, clocks, register file, cache geometry strings
(``S|N:nsets:line:assoc,...``; the L2 one per memory sub-partition), latencies (the L2 and DRAM
ones are *increments* over the level above, in their own clock domain) and DRAM timings in
command clocks. Everything a simgpu device needs that the config does not hold (vendor, product
name, peak rates, DRAM type, host link, power, ...) is taken from a ``base`` device file, and the
generated file says so value by value. :func:`import_config` returns the TOML text and the list of
config options that were not mapped, so none is dropped silently.

Accel-Sim's maintainers note that their A100/H100 configurations are not correlated against
hardware (``shared/data/accelsim/README.md``): an imported file is a starting point for
structure, not a source of measured latencies.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgpu.devices.load import load_device, loads_device, to_dict, toml_key, toml_value
from simgpu.devices.registry import Registry
from simgpu.devices.spec import DeviceSpec
from simgpu.errors import DeviceFileError, SimgpuError
from simgpu.io import atomic_write_text

__all__ = ["AccelSimConfig", "parse_config", "import_config", "ImportResult", "cache_geometry"]


@dataclass
class AccelSimConfig:
    """Options of one ``gpgpusim.config``: name -> (raw value, line number)."""

    path: str
    options: dict[str, tuple[str, int]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        v = self.options.get(name)
        return None if v is None else v[0]

    def require(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise DeviceFileError(self.path, f"-{name}", None, "present in the Accel-Sim config")
        return v

    def number(self, name: str) -> float:
        raw = self.require(name)
        try:
            return float(raw.split()[0])
        except (ValueError, IndexError) as exc:
            line = self.options[name][1]
            raise DeviceFileError(f"{self.path}:{line}", f"-{name}", raw, "a number") from exc

    def integers(self, name: str, sep: str) -> list[int]:
        raw = self.require(name)
        try:
            return [int(float(x)) for x in raw.split(sep) if x.strip()]
        except ValueError as exc:
            line = self.options[name][1]
            raise DeviceFileError(
                f"{self.path}:{line}", f"-{name}", raw, f"numbers separated by {sep!r}"
            ) from exc


def parse_config(path: str | Path) -> AccelSimConfig:
    """Read ``-option value`` lines (``#`` comments; quoted values may span lines)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SimgpuError(f"{path}: cannot read Accel-Sim config ({exc})") from exc
    cfg = AccelSimConfig(str(path))
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


def cache_geometry(spec: str, where: str = "cache") -> tuple[bool, int, int, int]:
    """``S:256:128:20,L:B:...`` -> (sectored, sets, line bytes, ways)."""
    m = _GEOM.match(spec.strip())
    if not m:
        raise DeviceFileError(where, "cache geometry", spec, "'S|N:sets:line:ways,...'")
    return m.group(1) == "S", int(m.group(2)), int(m.group(3)), int(m.group(4))


@dataclass
class ImportResult:
    """The generated device file and what could not be mapped."""

    toml: str
    device: DeviceSpec | None
    problems: list[str]
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
    config_path: str | Path, *, name: str, base: DeviceSpec, full_name: str | None = None
) -> ImportResult:
    """Map an Accel-Sim config onto a copy of ``base``; see the module docstring."""
    cfg = parse_config(config_path)
    src = Path(config_path).parent.name + "/" + Path(config_path).name
    data: dict[str, Any] = to_dict(base)
    notes: dict[str, str] = {}
    used: set[str] = set()

    def opt(o: str) -> str:
        used.add(o)
        return cfg.require(o)

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
    clusters = int(cfg.number("gpgpu_n_clusters"))
    per = (
        int(cfg.number("gpgpu_n_cores_per_cluster")) if cfg.get("gpgpu_n_cores_per_cluster") else 1
    )
    used.update({"gpgpu_n_clusters", "gpgpu_n_cores_per_cluster"})
    sms = clusters * per
    put("compute.sm_count", sms, f"-gpgpu_n_clusters {clusters} x -gpgpu_n_cores_per_cluster {per}")
    clocks = [float(x) for x in opt("gpgpu_clock_domains").split(":")]
    core, icnt, l2clk, dramclk = (clocks + [clocks[-1]] * 4)[:4]
    put("compute.boost_clock_MHz", core, f"-gpgpu_clock_domains core clock {core:g}")
    if base.compute.base_clock_MHz > core:
        put("compute.base_clock_MHz", core, "base clock capped at the config's core clock")
    threads, warp = (int(x) for x in opt("gpgpu_shader_core_pipeline").split(":"))
    put("compute.warp_size", warp, f"-gpgpu_shader_core_pipeline {threads}:{warp}")
    put("compute.max_threads_per_sm", threads, f"-gpgpu_shader_core_pipeline {threads}:{warp}")
    put("compute.max_warps_per_sm", threads // warp, "threads / warp size")
    put("compute.max_blocks_per_sm", int(cfg.number("gpgpu_shader_cta")), "-gpgpu_shader_cta")
    used.add("gpgpu_shader_cta")
    put(
        "compute.warp_schedulers_per_sm",
        int(cfg.number("gpgpu_num_sched_per_core")),
        "-gpgpu_num_sched_per_core",
    )
    used.add("gpgpu_num_sched_per_core")
    if cfg.get("gpgpu_compute_capability_major"):
        cc = (
            f"{int(cfg.number('gpgpu_compute_capability_major'))}."
            f"{int(cfg.number('gpgpu_compute_capability_minor'))}"
        )
        used.update({"gpgpu_compute_capability_major", "gpgpu_compute_capability_minor"})
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
    regs = int(cfg.number("gpgpu_shader_registers"))
    used.add("gpgpu_shader_registers")
    put("register_file.size_per_sm_KiB", regs * 4 // 1024, f"-gpgpu_shader_registers {regs} x 4 B")
    if cfg.get("gpgpu_registers_per_block"):
        put(
            "register_file.max_registers_per_block",
            int(cfg.number("gpgpu_registers_per_block")),
            "-gpgpu_registers_per_block",
        )
        used.add("gpgpu_registers_per_block")

    # -- L1 / shared ------------------------------------------------------------------------------
    sectored, sets, line, ways = cache_geometry(opt("gpgpu_cache:dl1"), f"{cfg.path}: dl1")
    l1_kib = (
        int(cfg.number("gpgpu_unified_l1d_size"))
        if cfg.get("gpgpu_unified_l1d_size")
        else (sets * line * ways // 1024)
    )
    used.add("gpgpu_unified_l1d_size")
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
        opts = sorted({int(x) for x in opt("gpgpu_shmem_option").split(",")})
        put("l1.shared_carveouts_KiB", opts, "-gpgpu_shmem_option")
    put("l1.hit_latency_cycles", cfg.number("gpgpu_l1_latency"), "-gpgpu_l1_latency (core cycles)")
    used.add("gpgpu_l1_latency")
    if cfg.get("gpgpu_smem_latency"):
        put("l1.shared_latency_cycles", cfg.number("gpgpu_smem_latency"), "-gpgpu_smem_latency")
        used.add("gpgpu_smem_latency")
    if cfg.get("gpgpu_shmem_num_banks"):
        put("l1.shared_banks", int(cfg.number("gpgpu_shmem_num_banks")), "-gpgpu_shmem_num_banks")
        used.add("gpgpu_shmem_num_banks")
    if cfg.get("gpgpu_shmem_size"):
        used.add("gpgpu_shmem_size")
        largest = int(cfg.number("gpgpu_shmem_size")) // 1024
        put(
            "compute.max_shared_memory_per_block_KiB",
            float(largest - 1),
            f"-gpgpu_shmem_size {largest} KiB less the 1 KiB the driver reserves per block",
        )

    # -- L2 -------------------------------------------------------------------------------------
    n_mem = int(cfg.number("gpgpu_n_mem"))
    subp = int(cfg.number("gpgpu_n_sub_partition_per_mchannel"))
    used.update({"gpgpu_n_mem", "gpgpu_n_sub_partition_per_mchannel"})
    s2, sets2, line2, ways2 = cache_geometry(opt("gpgpu_cache:dl2"), f"{cfg.path}: dl2")
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
    parts = (
        int(cfg.number("gpgpu_n_chiplet_partition")) if cfg.get("gpgpu_n_chiplet_partition") else 1
    )
    used.add("gpgpu_n_chiplet_partition")
    put("l2.partitions", parts, "-gpgpu_n_chiplet_partition (absent: 1)")
    l1_lat = cfg.number("gpgpu_l1_latency")
    rop = cfg.number("gpgpu_l2_rop_latency")
    used.add("gpgpu_l2_rop_latency")
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
    bus_bytes = int(cfg.number("gpgpu_dram_buswidth"))
    dual = int(cfg.number("dram_dual_bus_interface")) if cfg.get("dram_dual_bus_interface") else 0
    used.update({"gpgpu_dram_buswidth", "dram_dual_bus_interface"})
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
    burst = int(cfg.number("gpgpu_dram_burst_length"))
    ratio = (
        int(cfg.number("dram_data_command_freq_ratio"))
        if cfg.get("dram_data_command_freq_ratio")
        else 2
    )
    used.update({"gpgpu_dram_burst_length", "dram_data_command_freq_ratio"})
    rate = dramclk * ratio / 1000.0
    put(
        "dram.data_rate_Gbps",
        round(rate, 4),
        f"DRAM clock {dramclk:g} MHz x -dram_data_command_freq_ratio {ratio}",
    )
    put("dram.peak_bandwidth_GBps", round(bits * rate / 8, 1), "derived: bus bits x data rate / 8")
    dram_lat = cfg.number("dram_latency")
    used.add("dram_latency")
    total_ns = (l2_lat + dram_lat * core / l2clk) * 1000 / core
    put(
        "dram.unloaded_latency_ns",
        round(total_ns, 1),
        f"incremental: L2 hit + -dram_latency {dram_lat:g} L2 cycles, at {core:g} MHz",
    )
    timing_raw = opt("gpgpu_dram_timing_opt")
    t: dict[str, int] = {}
    for part in timing_raw.replace(" ", "").split(":"):
        if "=" in part:
            k, v = part.split("=", 1)
            t[k] = int(v)
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

    unmapped = (
        sorted(o for o in cfg.options if o not in used and not _SIMULATOR_ONLY.match(o))
        + unmapped_timing
    )
    simulator_only = sorted(o for o in cfg.options if _SIMULATOR_ONLY.match(o))

    text = _render(data, notes, base.name, src, unmapped, simulator_only)
    problems: list[str] = []
    device = None
    try:
        dev = loads_device(text, source=f"<{name}.toml>")
        device = dev if isinstance(dev, DeviceSpec) else None
    except DeviceFileError as exc:
        problems.append(str(exc))
    return ImportResult(text, device, problems, {k: v for k, v in notes.items()}, unmapped)


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
    lines += [f"#   -{o}" for o in unmapped] or ["#   (none)"]
    lines.append(f"# Simulator-only options ignored: {len(simulator_only)}")
    lines.append("")

    def emit(mapping: dict[str, Any], path: list[str]) -> None:
        scalars = [(k, v) for k, v in mapping.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in mapping.items() if isinstance(v, dict)]
        if path:
            lines.append("")
            lines.append("[" + ".".join(path) + "]")
        for k, v in scalars:
            full = ".".join([*path, k])
            note = notes.get(full, f"from {base}.toml")
            lines.append(f"{toml_key(k)} = {toml_value(v)}  # {note}")
        for k, v in tables:
            if k == "energy_pJ" or not v:
                if v:
                    lines.append("")
                    lines.append("[" + ".".join([*path, k]) + "]")
                    lines.append(f"# from {base}.toml")
                    for kk, vv in v.items():
                        lines.append(f"{toml_key(kk)} = {toml_value(vv)}")
                continue
            emit(v, [*path, k])

    emit(data, [])
    return "\n".join(lines) + "\n"


def add_import_command(sub: Any) -> None:
    """Register ``simgpu devices import-accelsim`` on the ``devices`` sub-parsers."""
    p = sub.add_parser(
        "import-accelsim",
        help="turn an Accel-Sim gpgpusim.config into a device file",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("config", metavar="GPGPUSIM_CONFIG", help="path to gpgpusim.config")
    p.add_argument("--name", required=True, help="name of the new device (and file stem)")
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
        metavar="FILE",
        help="where to write the TOML (default: NAME.toml here); never overwritten",
    )
    p.set_defaults(handler=cmd_import_accelsim)


def cmd_import_accelsim(args: Any) -> int:
    """Handler: write the device file, list unmapped options and validation problems."""
    ref = args.base
    base = (
        load_device(ref)
        if ref.endswith(".toml")
        else Registry(getattr(args, "models", None)).get_device(ref)
    )
    if not isinstance(base, DeviceSpec):
        raise SimgpuError(f"--base {ref}: a GPU device file is needed, got kind {base.kind!r}")
    res = import_config(args.config, name=args.name, base=base, full_name=args.full_name)
    out = Path(args.out or f"{args.name}.toml")
    if out.exists():
        raise SimgpuError(f"{out}: exists; device files are never overwritten")
    atomic_write_text(out, res.toml)
    print(
        f"wrote {out}: {sum(1 for v in res.mapped.values() if 'accelsim' in v)} values from"
        f" {args.config}, the rest from {base.name}"
    )
    print(f"not mapped ({len(res.unmapped)}): " + ", ".join(f"-{o}" for o in res.unmapped))
    for problem in res.problems:
        print(f"simgpu: warning: {problem} (edit the file before use)", file=sys.stderr)
    return 1 if res.problems else 0
