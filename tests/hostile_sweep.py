"""A sweep of bad input over every ``simgpu`` command, with the outcome of each.

Each case runs ``python -m simgpu ...`` in a subprocess, in a sandbox of its own: bad files are
written into ``data/``, the command runs in ``work/`` with ``SIMGPU_RESULTS``, ``SIMGPU_CACHE``
and ``HOME`` pointing inside the sandbox, and ``out/`` is the output folder a case may name. The
outcome is one of

``clean``        a non-zero exit with a one-line ``error:`` message and no traceback;
``answer``       exit 0 where a correct answer is an acceptable outcome (the case says so);
``traceback``    a Python traceback on stderr;
``silent``       exit 0 for input that must be refused;
``hang``         no exit within the case's time limit;
``outside``      a file written or changed outside the folders the command may write to (the
                 sandbox sits three folders deep, so that ``../../`` escapes are seen).

Usage (a shared warm cache saves retraining the forest in every predictor case)::

    python tests/hostile_sweep.py [--only SURFACE,...] [--timeout S] [--show]

It prints the totals per surface and writes ``hostile_sweep.csv`` under
``$SIMGPU_RESULTS/hostile_sweep/<time>/`` (``results/`` by default). Not a test: a benchmark of
robustness, whose cases and outcomes the tests of each surface pin down one by one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
H100_TOML = ROOT / "models" / "h100-sxm.toml"
RUN = ROOT / "calibration" / "h100-sxm" / "20261122T154403Z"

#: folders of the checkout that no command may change unless told to (checked too)
REPO_DATA = ("models", "calibration", "traces", "kernels")

Setup = Callable[[Path], None]


@dataclass
class Case:
    surface: str
    name: str
    argv: list[str]
    setup: Setup | None = None
    #: "error": must be refused; "either": a clear error or a correct answer
    expect: str = "error"
    env: dict[str, str] = field(default_factory=dict)
    #: sandbox folders besides results/, cache/, home/ and out/ the command may write to
    may_write: tuple[str, ...] = ()
    timeout: float | None = None


# --- bad files --------------------------------------------------------------------------------


def write(rel: str, data: str | bytes) -> Setup:
    def setup(box: Path) -> None:
        path = box / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return setup


def fifo(rel: str) -> Setup:
    def setup(box: Path) -> None:
        path = box / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)

    return setup


def device_with(key: str, value: str) -> str:
    """h100-sxm.toml with ``section.key`` set to the TOML text ``value``."""
    section, name = key.rsplit(".", 1)
    out, current = [], ""
    for line in H100_TOML.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]")
        elif current == section and stripped.split("=")[0].strip() == name:
            line = f"{name} = {value}"
        out.append(line)
    return "\n".join(out) + "\n"


def run_copy(rel: str, edit: Callable[[Path], None] | None = None) -> Setup:
    """A copy of the bundled H100 run at data/<rel>, edited."""

    def setup(box: Path) -> None:
        dest = box / "data" / rel
        shutil.copytree(RUN, dest)
        if edit:
            edit(dest)

    return setup


def manifest_with(**changes: object) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        m = json.loads((run / "manifest.json").read_text())
        m.update(changes)
        (run / "manifest.json").write_text(json.dumps(m))

    return edit


def table_edit(table: str, column: str, value: str, row: int = 0) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        path = run / f"{table}.csv"
        rows = list(csv.reader(path.read_text().splitlines()))
        rows[1 + row][rows[0].index(column)] = value
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")

    return edit


def table_text(table: str, text: str | bytes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        path = run / f"{table}.csv"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return edit


ACCELSIM_OK = """-kernel name = k
-kernel id = 1
-grid dim = (1,1,1)
-block dim = (32,1,1)
-shmem = 0
-nregs = 8
-binary version = 61
-cuda stream id = 0
-shmem base_addr = 0x00007f0000000000
-local mem base_addr = 0x00007f0001000000
-nvbit version = 1.5.5
-accelsim tracer version = 4

#traces format = threadblock_x threadblock_y threadblock_z warpid_tb PC mask dest_num \
[reg_dests] opcode src_num [reg_srcs] mem_width [adrrescompress?] [mem_addresses]

#BEGIN_TB

thread block = 0,0,0

warp = 0
insts = 2
0000 ffffffff 1 R1 LDG.E 1 R2 {width} 1 {addr} 4
0010 ffffffff 0 EXIT 0 0

#END_TB
"""


def accelsim(rel: str, width: str = "4", addr: str = "0x7f0000000000",
             text: str | None = None) -> Setup:
    body = text if text is not None else ACCELSIM_OK.format(width=width, addr=addr)

    def setup(box: Path) -> None:
        folder = box / "data" / rel
        folder.mkdir(parents=True)
        (folder / "kernel-1.traceg").write_text(body)
        (folder / "kernelslist.g").write_text("kernel-1.traceg\n")

    return setup


def parquet(rel: str, kind: str) -> Setup:
    """The bundled sample trace with one column broken, its launch record kept."""

    def setup(box: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(ROOT / "traces" / "sample_tiled_sgemm16_64.parquet")
        meta = table.schema.metadata
        if kind == "empty":
            table = table.slice(0, 0)
        elif kind == "string_width":
            i = table.schema.get_field_index("width")
            table = table.set_column(i, "width", pa.array([str(v) for v in
                                                           table["width"].to_pylist()]))
        elif kind == "float_warp":
            i = table.schema.get_field_index("warp")
            table = table.set_column(i, "warp", pa.array([v + 0.5 for v in
                                                          table["warp"].to_pylist()]))
        elif kind == "no_column":
            table = table.drop([table.column_names[0]])
        elif kind == "no_launch":
            meta = None
        path = box / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.replace_schema_metadata(meta), path)

    return setup


# --- the cases -----------------------------------------------------------------------------------


def cases() -> list[Case]:
    out: list[Case] = []
    D = "../data/"  # commands run in work/, next to data/

    # devices: files that are not device files, and device files with bad values
    for name, setup, path in [
        ("missing file", None, D + "nope.toml"),
        ("a folder", write("dir/x", "x"), D + "dir"),
        ("a FIFO", fifo("fifo.toml"), D + "fifo.toml"),
        ("/dev/zero", None, "/dev/zero"),
        ("empty file", write("empty.toml", ""), D + "empty.toml"),
        ("binary garbage", write("bin.toml", os.urandom(4096)), D + "bin.toml"),
        ("non-UTF-8", write("latin.toml", "name = 'caf\xe9'\n".encode("latin-1")),
         D + "latin.toml"),
        ("TOML syntax", write("syntax.toml", "[compute\nsm_count = = 3\n"), D + "syntax.toml"),
        ("huge file", write("huge.toml", "# " + "x" * (64 << 20) + "\n"), D + "huge.toml"),
    ]:
        out.append(Case("devices", f"validate {name}", ["devices", "validate", path], setup,
                        timeout=30))
    keys = ["compute.sm_count", "compute.boost_clock_MHz", "l2.size_MiB", "dram.size_GiB",
            "dram.peak_bandwidth_GBps", "l1.sector_bytes", "l2.line_bytes", "power.tdp_W"]
    for key in keys:
        for value in ["0", "-1", "1e-300", "1e300", '"abc"', "nan", "true", "[]"]:
            out.append(Case("devices", f"{key} = {value}",
                            ["devices", "validate", D + "h100-sxm.toml"],
                            write("h100-sxm.toml", device_with(key, value))))
    for name in ["../models/h100-sxm", "no-such-gpu", "", "h100-sxm.toml/.."]:
        out.append(Case("devices", f"show {name!r}", ["devices", "show", name]))
    out.append(Case("devices", "diff with a missing device", ["devices", "diff", "h100-sxm",
                                                              "nope"]))
    cfg = ROOT.parent / "shared" / "data" / "accelsim" / "configs"
    config = next(iter(sorted(cfg.rglob("gpgpusim.config"))), None) if cfg.is_dir() else None
    models = write("models/h100-sxm.toml", H100_TOML.read_text())
    for name in ["../../evil", "/tmp/evil-abs", "", "a/b", "..", "x" * 300]:
        if config is not None:  # written to the models folder named, ../data/models
            out.append(Case("devices", f"import-accelsim --name {name[:20]!r}",
                            ["--models", D + "models", "devices", "import-accelsim",
                             str(config), "--name", name, "--base", "h100-sxm"], models,
                            may_write=("data/models",)))
    out.append(Case("devices", "import-accelsim garbage config",
                    ["devices", "import-accelsim", D + "g.config", "--name", "g", "--out",
                     "../out/g.toml"], write("g.config", "-gpgpu_n_clusters banana\n")))
    out.append(Case("devices", "import-accelsim missing config",
                    ["devices", "import-accelsim", D + "none.config", "--name", "g"]))
    out.append(Case("devices", "--models a file", ["--models", D + "f", "devices", "list"],
                    write("f", "x")))

    # simulate: numbers, devices, traces
    sim = ["simulate", "--device", "h100-sxm", "--workload"]
    g = [*sim, "gemm", "--m", "64", "--n", "64", "--k", "64"]
    for flag in ["--m", "--n", "--k"]:
        for v in ["0", "-1", "10000000000000", "abc", "1.5"]:
            argv = list(g)
            argv[argv.index(flag) + 1] = v
            out.append(Case("simulate", f"gemm {flag} {v}", argv))
    for extra in [["--tile", "0"], ["--tile", "3"], ["--tile", "1024"],
                  ["--kernel", "sgemm_regblock", "--bm", "3", "--tm", "0"],
                  ["--kernel", "sgemm_regblock", "--bm", "0"],
                  ["--kernel", "sgemm_regblock", "--tm", "3"],
                  ["--kernel", "sgemm_regblock", "--bm", "4096", "--bn", "4096"],
                  ["--kernel", "sgemm_naive", "--tile", "16"], ["--kernel", "cublas"],
                  ["--bm", "64"], ["--footprint", "1024"]]:
        out.append(Case("simulate", "gemm " + " ".join(extra), [*g, *extra]))
    for kind, extra in [("pchase", ["--footprint", "0"]), ("pchase", ["--stride", "3"]),
                        ("pchase", ["--stride", "0"]), ("pchase", ["--steps", "0"]),
                        ("pchase", ["--footprint", "1000000000000000"]),
                        ("stream", ["--elements", "0"]), ("stream", ["--elements", "3"]),
                        ("stream", ["--elements", "1000000000000000"]),
                        ("stream", ["--op", "frob"]), ("transpose", ["--rows", "0"]),
                        ("transpose", ["--rows", "1000000000"]), ("reduction", ["--elements",
                                                                               "-4"]),
                        ("gemv", ["--m", "64"]), ("gemv", ["--m", "0", "--n", "64"])]:
        out.append(Case("simulate", f"{kind} " + " ".join(extra), [*sim, kind, *extra]))
    for name, setup in [("missing device", None), ("a folder", write("d/x", "x"))]:
        out.append(Case("simulate", f"--device {name}",
                        ["simulate", "--device", D + ("d" if setup else "x.toml"), "--workload",
                         "reduction"], setup))
    out.append(Case("simulate", "--device bad toml", ["simulate", "--device",
                                                      D + "h100-sxm.toml", "--workload",
                                                      "reduction"],
                    write("h100-sxm.toml", device_with("dram.size_GiB", "1e-300"))))
    tr = ["simulate", "--device", "h100-sxm", "--trace"]
    out += [
        Case("traces", "missing", [*tr, D + "none"]),
        Case("traces", "empty folder", [*tr, D + "e"], write("e/readme", "x")),
        Case("traces", "accelsim width -4", [*tr, D + "a"], accelsim("a", width="-4")),
        Case("traces", "accelsim width 4096", [*tr, D + "a"], accelsim("a", width="4096")),
        Case("traces", "accelsim 80-bit address", [*tr, D + "a"],
             accelsim("a", addr="0x" + "f" * 20)),
        Case("traces", "accelsim R999", [*tr, D + "a"],
             accelsim("a", text=ACCELSIM_OK.replace("1 R1 LDG", "1 R999 LDG").format(
                 width="4", addr="0x7f0000000000"))),
        Case("traces", "accelsim truncated", [*tr, D + "a"],
             accelsim("a", text=ACCELSIM_OK.format(width="4", addr="0x7f0000000000")[:-60])),
        Case("traces", "accelsim no instructions", [*tr, D + "a"],
             accelsim("a", text=ACCELSIM_OK.split("#BEGIN_TB")[0])),
        Case("traces", "accelsim binary", [*tr, D + "a"],
             accelsim("a", text=os.urandom(512).decode("latin-1"))),
        Case("traces", "accelsim bad mask", [*tr, D + "a"],
             accelsim("a", text=ACCELSIM_OK.replace("0000 ffffffff", "0000 fffffffffff").format(
                 width="4", addr="0x7f0000000000"))),
        *[Case("traces", f"parquet {k}", [*tr, D + "t.parquet"], parquet("t.parquet", k))
          for k in ("empty", "string_width", "float_warp", "no_column", "no_launch")],
        Case("traces", "parquet garbage", [*tr, D + "g.parquet"],
             write("g.parquet", b"PAR1" + os.urandom(256))),
        Case("traces", "a FIFO", [*tr, D + "f.parquet"], fifo("f.parquet"), timeout=30),
    ]

    # compare
    c = ["compare", "--device", "h100-sxm", "--m", "64", "--n", "64", "--k", "64"]
    out += [
        Case("compare", "--m 0", ["compare", "--m", "0", "--n", "1", "--k", "1"]),
        Case("compare", "--m 10^12", ["compare", "--m", "1000000000000", "--n", "64", "--k",
                                      "64", "--dtype", "fp32", "--view", "analytical"]),
        Case("compare", "--dtype int4", [*c, "--dtype", "int4"]),
        Case("compare", "fp16 sgemm_naive", [*c, "--dtype", "fp16", "--kernel", "sgemm_naive"]),
        Case("compare", "--tile 12", [*c, "--dtype", "fp32", "--kernel", "sgemm_tiled",
                                      "--tile", "12"]),
        Case("compare", "--tile with cublas", [*c, "--tile", "16"]),
        Case("compare", "unknown device", ["compare", "--device", "nope", "--m", "64", "--n",
                                           "64", "--k", "64"]),
        Case("compare", "--calibration missing", [*c, "--view", "measured", "--calibration",
                                                  D + "none"]),
        Case("compare", "--calibration a file", [*c, "--view", "measured", "--calibration",
                                                 D + "f"], write("f", "x")),
        Case("compare", "--timeline exists", [*c, "--dtype", "fp32", "--kernel", "sgemm_tiled",
                                              "--timeline", D + "t.json"], write("t.json", "{}")),
        Case("compare", "--models empty", ["--models", D + "m", *c, "--view", "analytical"],
             write("m/readme", "x")),
    ]

    # predict
    pg = ["predict", "gemm", "--device", "h100-sxm", "--m", "64", "--n", "64", "--k", "64"]
    for extra in [["--kernel", "sgemm_tiled", "--dtype", "fp32", "--tile-m", "3"],
                  ["--kernel", "sgemm_tiled", "--dtype", "fp32", "--tile-m", "1024"],
                  ["--threads-per-block", "1000000"], ["--split-k", "0"], ["--split-k", "-3"],
                  ["--dtype", "int4"], ["--kernel", "nope"], ["--m", "0"],
                  ["--m", "1000000000000"], ["--thread-tile-m", "0", "--kernel", "sgemm_tiled",
                                             "--dtype", "fp32"]]:
        argv = list(pg)
        if extra[0] == "--m":
            argv[argv.index("--m") + 1] = extra[1]
        else:
            argv += extra
        out.append(Case("predict", "gemm " + " ".join(extra), argv, timeout=300,
                        expect="either" if "--thread-tile-m" in extra else "error"))
    good_csv = "M,N,K,dtype,time_s\n64,64,64,fp32,1e-5\n"
    for name, text in [("one row", good_csv), ("text in a number", good_csv.replace("64,64,64",
                                                                                    "abc,64,64")),
                       ("empty", ""), ("header only", "M,N,K,dtype,time_s\n"),
                       ("torn last row", good_csv * 1 + "128,128,12"),
                       ("non-UTF-8", b"M,N,K\n\xff\xfe,1,2\n"), ("binary", os.urandom(2048))]:
        out.append(Case("predict", f"evaluate --data {name}",
                        ["predict", "evaluate", "--data", D + "d.csv", "--out", "../out/e"],
                        write("d.csv", text), timeout=300))
    for extra in [["--trees", "0"], ["--sample", "-5"], ["--repeats", "0"], ["--trees", "-1"],
                  ["--data", D + "none.csv"]]:
        out.append(Case("predict", "evaluate " + " ".join(extra),
                        ["predict", "evaluate", "--out", "../out/e", *extra], timeout=300))
    out.append(Case("predict", "fit-power --cv 100000",
                    ["predict", "fit-power", "--device", "h100-sxm", "--cv", "100000"],
                    timeout=300))
    out.append(Case("predict", "fit-power --cv 0",  # 0 is the documented "no held-out check"
                    ["predict", "fit-power", "--device", "h100-sxm", "--cv", "0"],
                    expect="either", timeout=300))
    out.append(Case("predict", "train --trees 0", ["predict", "train", "--trees", "0",
                                                   "--out", "../out/t"], timeout=300))
    out.append(Case("predict", "SIMGPU_CACHE a file", pg, write("cachefile", "x"),
                    env={"SIMGPU_CACHE": "../data/cachefile"}, timeout=300))

    # calibration runs: validate, fit, summary, close
    v = ["validate", "--device", "h100-sxm", "--views", "analytical", "--only", "gemv"]
    out += [
        Case("calibration", "validate --run missing", [*v, "--run", D + "none"]),
        Case("calibration", "validate --run a file", [*v, "--run", D + "f"], write("f", "x")),
        Case("calibration", "validate run_id escapes", [*v, "--run", D + "r"],
             run_copy("r", manifest_with(run_id="../../../../escape")), may_write=("data/r",)),
        Case("calibration", "validate device escapes", [*v, "--run", D + "r"],
             run_copy("r", manifest_with(device="../../../escape")), may_write=("data/r",)),
        Case("calibration", "validate manifest not JSON", [*v, "--run", D + "r"],
             run_copy("r", lambda p: (p / "manifest.json").write_text("{"))),
        Case("calibration", "validate manifest non-UTF-8", [*v, "--run", D + "r"],
             run_copy("r", lambda p: (p / "manifest.json").write_bytes(b"\xff\xfe{}"))),
        Case("calibration", "validate status unknown", [*v, "--run", D + "r"],
             run_copy("r", manifest_with(status="exploded"))),
        Case("calibration", "validate gemv time -1", [*v, "--run", D + "r"],
             run_copy("r", table_edit("gemv", "time_ms", "-1"))),
        Case("calibration", "validate gemv time nan", [*v, "--run", D + "r"],
             run_copy("r", table_edit("gemv", "time_ms", "nan"))),
        Case("calibration", "validate gemv M text", [*v, "--run", D + "r"],
             run_copy("r", table_edit("gemv", "M", "four thousand"))),
        Case("calibration", "validate gemv header only", [*v, "--run", D + "r"],
             run_copy("r", table_text("gemv", "M,N,bytes_moved,flops,time_ms,time_ms_p10,"
                                              "time_ms_p90,reps,bandwidth_GBps,rel_err,check_ok\n"))),
        Case("calibration", "validate gemv non-UTF-8", [*v, "--run", D + "r"],
             run_copy("r", table_text("gemv", b"M,N\n\xff,\xfe\n"))),
        Case("calibration", "validate --max-sim -1", ["validate", "--device", "h100-sxm",
                                                      "--run", str(RUN), "--only", "gemv",
                                                      "--max-sim", "-1", "--out", "../out/v"]),
        Case("calibration", "validate --sim-budget -5", ["validate", "--device", "h100-sxm",
                                                         "--run", str(RUN), "--only", "gemv",
                                                         "--sim-budget", "-5", "--out",
                                                         "../out/v"]),
        Case("calibration", "validate --out a file", [*v, "--run", str(RUN), "--out", D + "f"],
             write("f", "x")),
        Case("calibration", "validate SIMGPU_RESULTS a file", [*v, "--run", str(RUN)],
             write("f", "x"), env={"SIMGPU_RESULTS": "../data/f"}),
        Case("calibration", "fit gemm M text", ["fit", D + "r"],
             run_copy("r", table_edit("gemm", "M", "four thousand"))),
        Case("calibration", "fit gemm time nan", ["fit", D + "r"],
             run_copy("r", table_edit("gemm", "time_ms", "nan"))),
        Case("calibration", "fit --write device escapes", ["fit", D + "r", "--write",
                                                           "--models-out", "../out"],
             run_copy("r", manifest_with(device="../../../escape"))),
        Case("calibration", "fit --write run_id escapes", ["fit", D + "r", "--write",
                                                           "--models-out", "../out"],
             run_copy("r", manifest_with(run_id="../../../escape"))),
        Case("calibration", "summary of a file", ["calibration-summary", D + "f"],
             write("f", "x")),
        Case("calibration", "summary missing", ["calibration-summary", D + "none"]),
        Case("calibration", "close missing", ["calibration-close", D + "none", "--reason", "x"]),
        Case("calibration", "close a complete run", ["calibration-close", D + "r", "--reason",
                                                     "x"], run_copy("r"), may_write=("data/r",)),
        Case("calibration", "calibrate without a GPU", ["calibrate", "--quick", "--out",
                                                        "../out/c"]),
        Case("calibration", "calibrate --resume a file", ["calibrate", "--resume", D + "f"],
             write("f", "x")),
    ]

    # sweep and experiments
    sw = ["sweep", "--out", "../out/s", "--workers", "0"]
    for extra in [["--set", "M=abc"], ["--set", "M=64,128", "--set", "M=256"],
                  ["--set", "M=64.5"], ["--set", "nonsense=1"], ["--set", "M="],
                  ["--set", "l2.size_MiB=-5"], ["--set", "hbm_bandwidth_GBps=0"],
                  ["--set", "pcie_gen=9"], ["--workload", "frob"], ["--view", "guess"],
                  ["--set", "M=" + ",".join(map(str, range(1, 1001))),
                   "--set", "N=" + ",".join(map(str, range(1, 1001))),
                   "--set", "K=" + ",".join(map(str, range(1, 101)))],
                  ["--workers", "-1"], ["--set", "M=1000000000000"]]:
        out.append(Case("sweep", " ".join(extra), [*sw, *extra], timeout=120))
    out.append(Case("sweep", "--out a file", ["sweep", "--out", D + "f", "--workers", "0"],
                    write("f", "x")))
    ex = ["experiment", "run", "long_context_kv", "--out", "../out/x", "--workers", "0"]
    for extra in [["--set", "nope=1"], ["--set", "device=h100-sxm", "--set", "device=h200"],
                  ["--device", "nope"], ["--workers", "-2"]]:
        out.append(Case("experiments", " ".join(extra), [*ex, *extra], timeout=120))
    out.append(Case("experiments", "unknown study", ["experiment", "run", "nope"]))
    return out


# --- running -------------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() or p.is_fifo():
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime)
    return out


def run_case(case: Case, timeout: float, python: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        top = Path(tmp)
        box = top / "a" / "b" / "box"
        for sub in ("data", "work", "results", "cache", "home", "out"):
            (box / sub).mkdir(parents=True)
        if case.setup:
            case.setup(box)
        before = _snapshot(top)
        repo_before = {d: _snapshot(ROOT / d) for d in REPO_DATA}
        env = dict(os.environ, HOME=str(box / "home"), SIMGPU_RESULTS=str(box / "results"),
                   SIMGPU_CACHE=os.environ.get("HOSTILE_CACHE", str(box / "cache")),
                   PYTHONPATH=str(ROOT))
        env.update({k: str((box / "work" / v).resolve()) if v.startswith("../") else v
                    for k, v in case.env.items()})
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([python, "-m", "simgpu", *case.argv], cwd=box / "work",
                                  env=env, capture_output=True, text=True,
                                  timeout=case.timeout or timeout)
            rc, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired:
            rc, err = None, ""
        wall = time.perf_counter() - t0
        allowed = ("a/b/box/results", "a/b/box/cache", "a/b/box/home", "a/b/box/out",
                   *(f"a/b/box/{p}" for p in case.may_write))
        after = _snapshot(top)
        outside = sorted(k for k, v in after.items()
                         if before.get(k) != v and not k.startswith(allowed))
        for d, snap in repo_before.items():  # the checkout's own data is never an output
            outside += sorted(f"{d}/{k}" for k, v in _snapshot(ROOT / d).items()
                              if snap.get(k) != v)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if rc is None:
        outcome = "hang"
    elif "Traceback (most recent call last)" in err:
        outcome = "traceback"
    elif outside:
        outcome = "outside"
    elif rc == 0:
        outcome = "answer" if case.expect == "either" else "silent"
    elif lines and "error:" in lines[-1]:
        outcome = "clean"
    else:
        outcome = "unclear"
    return {"surface": case.surface, "case": case.name, "outcome": outcome, "rc": rc,
            "seconds": round(wall, 2), "message": lines[-1][:200] if lines else "",
            "outside": ";".join(outside)[:200]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="comma-separated surfaces")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    p.add_argument("--python", default=sys.executable, help="the interpreter to run simgpu with")
    p.add_argument("--show", action="store_true", help="print every case's outcome")
    args = p.parse_args(argv)
    todo = [c for c in cases() if not args.only or c.surface in args.only.split(",")]
    rows = []
    for i, case in enumerate(todo, 1):
        row = run_case(case, args.timeout, args.python)
        rows.append(row)
        if args.show or row["outcome"] not in ("clean", "answer"):
            print(f"[{i}/{len(todo)}] {row['surface']}: {row['case']}: {row['outcome']}"
                  f" ({row['seconds']} s) {row['message'] or row['outside']}", flush=True)
    totals = Counter(str(r["outcome"]) for r in rows)
    print(f"\n{len(rows)} inputs: " + ", ".join(f"{totals[k]} {k}" for k in (
        "clean", "answer", "traceback", "silent", "hang", "outside", "unclear") if totals[k]))
    by = Counter((str(r["surface"]), str(r["outcome"])) for r in rows)
    for surface in sorted({str(r["surface"]) for r in rows}):
        print(f"  {surface:12s} " + ", ".join(f"{n} {o}" for (s, o), n in sorted(by.items())
                                              if s == surface))
    folder = Path(os.environ.get("SIMGPU_RESULTS", ROOT / "results")) / "hostile_sweep" / (
        datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "hostile_sweep.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"saved {folder / 'hostile_sweep.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
