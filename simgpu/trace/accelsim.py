"""Import Accel-Sim / NVBit kernel traces (``kernelslist.g`` + ``kernel-N.traceg``).

The format is Accel-Sim's trace-driven input (gpu-simulator/trace-parser in accel-sim-framework).
A ``.traceg`` file starts with ``-key = value`` header lines (kernel name, grid and block dims,
shared memory, registers, binary and tracer versions, shared/local window bases), then one
``#BEGIN_TB ... #END_TB`` section per thread block holding ``warp = N`` / ``insts = M`` headers and
one line per warp instruction::

    [tb_x tb_y tb_z warp]  (tracer version < 3 only)
    [line_num]             (only with -enable lineinfo = 1)
    PC mask dest_num [Rd..] OPCODE src_num [Rs..] mem_width [mode addresses..]

A trace without the ``-accelsim tracer version`` header counts as version 0, as in Accel-Sim's
parser (so its lines carry the block/warp prefix). ``mask`` is hex with bit *i* = lane *i*.
A memory instruction (``mem_width > 0``) is followed by
an address mode: 0 lists the address of every active lane, 1 is ``base stride`` (lanes at
``base + k * stride`` over the active lanes, which the tracer writes only when they are one run),
2 is ``base`` then one signed delta per further active lane (each address = previous + delta).
Words after the addresses (newer tracers add an immediate and store data) are not read.
``kernelslist.g`` lists kernel trace files (plain names in its folder) and
``MemcpyHtoD,addr,bytes`` host-to-device copies, in program order.

Every instruction is checked by :meth:`simgpu.trace.schema.Instruction.check` and the launch by
:func:`simgpu.trace.schema.check_launch`, the validation the Parquet reader applies too; every
error is a :class:`~simgpu.errors.DatasetError` naming the file and line. Files are read within
bounds (:mod:`simgpu.io`): regular files only, of at most :data:`MAX_TRACEG_BYTES` or
:data:`MAX_KERNELSLIST_BYTES`, with lines of at most :data:`MAX_LINE_BYTES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from simgpu.errors import DatasetError
from simgpu.io import UnusableFile, format_bytes, open_input
from simgpu.trace.schema import (
    ADDRESS_LIMIT,
    MAX_OPERANDS,
    MAX_REGS_PER_THREAD,
    MAX_SHARED_BYTES,
    MEMORY_CLASSES,
    RZ,
    Instruction,
    KernelLaunch,
    ListTrace,
    check_address_list,
    check_addresses,
    check_launch,
    check_width,
    classify_opcode,
    fixed_space,
)

__all__ = [
    "AccelSimKernel",
    "KernelList",
    "MemcpyCommand",
    "read_traceg",
    "read_kernelslist",
    "load_accelsim",
    "opcode_space",
    "MAX_TRACEG_BYTES",
    "MAX_KERNELSLIST_BYTES",
    "MAX_LINE_BYTES",
    "MAX_HEADER_LINES",
]

#: Size of the shared-memory and local-memory windows above their base addresses, used to
#: place generic LD/ST addresses (Accel-Sim: SHARED_MEM_SIZE_MAX 228 KiB per SM on Hopper;
#: assumption: the window is at least this large on every architecture, which holds since
#: addresses in a window never exceed the block's shared memory size).
SHARED_WINDOW_BYTES = 1 << 24

#: Largest ``.traceg`` read. The reader holds the whole kernel in memory, about 20 bytes of
#: Python objects per byte of trace text (matrixmul32: 179 KB of text, 4416 instructions), so
#: 512 MiB of text (about 13 million warp instructions at 40 bytes a line) needs some 10 GiB.
#: Larger kernels: trace fewer of them, or a sample of their thread blocks.
MAX_TRACEG_BYTES = 512 << 20
#: Largest ``kernelslist.g`` read: one short line per kernel launch or copy; 16 MiB is some
#: 300,000 of them.
MAX_KERNELSLIST_BYTES = 16 << 20
#: Longest line read. A mode-0 memory instruction with 32 addresses is about 700 bytes; newer
#: tracers add store data (32 lanes x 4 registers) of a few KiB. 1 MiB is far beyond either.
MAX_LINE_BYTES = 1 << 20
#: Most ``-key = value`` header lines: NVBit's tracer writes about fifteen.
MAX_HEADER_LINES = 1000
#: Most instructions one warp may declare (``insts = M``): far beyond any traced kernel, and
#: what :data:`MAX_TRACEG_BYTES` could hold.
_MAX_INSTS = 1 << 32


@dataclass(frozen=True)
class MemcpyCommand:
    """A host-to-device copy listed in ``kernelslist.g``."""

    address: int
    nbytes: int


@dataclass
class KernelList:
    """The commands of a ``kernelslist.g``: kernel trace files and copies, in order."""

    path: Path
    kernels: list[Path] = field(default_factory=list)
    memcpys: list[MemcpyCommand] = field(default_factory=list)


@dataclass
class AccelSimKernel:
    """One imported kernel: a :class:`ListTrace` plus the header fields that have no slot in it."""

    trace: ListTrace
    header: dict[str, str]
    tracer_version: int
    binary_version: int


_WINDOW_KEYS = (("shmem base_addr", "shared"), ("local mem base_addr", "local"))


def _windows(header: dict[str, str], where: str | None = None) -> list[tuple[int, str]]:
    """(base address, space) of the shared and local windows the header gives. With ``where``,
    a malformed base is an error; without, it is ignored."""
    out = []
    for key, space in _WINDOW_KEYS:
        if key in header:
            value = _hex(header[key])
            if value is None or not 0 <= value < ADDRESS_LIMIT:
                if where is not None:
                    raise DatasetError(
                        f"{where}: -{key} = {header[key][:40]!r}, expected a 64-bit hex address"
                    )
                continue
            out.append((value, space))
    return out


def _place(opcode: str, first_address: int | None, windows: list[tuple[int, str]]) -> str:
    space = fixed_space(opcode)
    if space is not None:
        return space
    if first_address is not None:
        for lo, name in windows:
            if lo <= first_address < lo + SHARED_WINDOW_BYTES:
                return name
    return "global"


def opcode_space(opcode: str, first_address: int | None, header: dict[str, str]) -> str:
    """Memory space of a memory opcode; generic LD/ST are placed by address window."""
    if opcode.split(".", 1)[0].upper() == "LDC":
        return "const"
    return _place(opcode, first_address, _windows(header))


def _hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


_DIM = re.compile(r"\(\s*(\d{1,20})\s*,\s*(\d{1,20})\s*,\s*(\d{1,20})\s*\)")
#: Operands of other register files (predicates, uniform registers, barriers): not tracked.
_OTHER_REGISTER = re.compile(r"(?:P|UP|UR|B|SR_)[A-Z0-9_]*|PT|UPT|URZ")


def _dims(text: str, where: str) -> tuple[int, int, int]:
    m = _DIM.fullmatch(text.strip())
    if not m:
        raise DatasetError(f"{where}: dimensions {text[:40]!r}, expected '(x,y,z)'")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _header_int(header: dict[str, str], key: str, lo: int, hi: int, where: str) -> int:
    text = header.get(key, "0").strip()
    if not re.fullmatch(r"\d{1,20}", text) or not lo <= int(text) <= hi:
        raise DatasetError(f"{where}: -{key} = {text[:40]!r}, expected a whole number {lo}..{hi}")
    return int(text)


def _registers(tokens: list[str], label: str, where: str) -> tuple[int, ...]:
    """R<n> tokens -> register numbers (RZ left out; other register files ignored)."""
    out = []
    for token in tokens:
        if len(token) > 1 and token[0] == "R" and token[1:].isdigit():
            n = int(token[1:])
            if n != RZ:
                out.append(n)
        elif not _OTHER_REGISTER.fullmatch(token):
            raise DatasetError(
                f"{where}: {label} register {token[:40]!r}, expected R<number> (or another"
                " register file: P, UR, UP, B)"
            )
    return tuple(out)


def _int(token: str, base: int, what: str, where: str) -> int:
    try:
        return int(token, base)
    except ValueError:
        kind = "hexadecimal" if base == 16 else "decimal"
        raise DatasetError(f"{where}: {what} {token[:40]!r} is not a {kind} number") from None


def _parse_inst(
    tokens: list[str], version: int, lineinfo: bool, windows: list[tuple[int, str]], where: str
) -> tuple[Instruction, tuple[int, int, int, int] | None]:
    """One instruction line -> (Instruction, old-format (tb_x, tb_y, tb_z, warp) or None)."""
    n = len(tokens)
    i = 0
    prefix: tuple[int, int, int, int] | None = None
    what = "thread block and warp prefix"
    try:
        if version < 3:
            x, y, z, w = (_int(tokens[k], 10, what, where) for k in range(4))
            prefix = (x, y, z, w)
            i = 4
        if lineinfo:
            what = "line number"
            _int(tokens[i], 10, what, where)
            i += 1
        what = "PC"
        pc = _int(tokens[i], 16, what, where)
        what = "mask"
        mask = _int(tokens[i + 1], 16, what, where)
        i += 2
        what = "destination count"
        ndst = _int(tokens[i], 10, what, where)
        if not 0 <= ndst <= MAX_OPERANDS:
            raise DatasetError(f"{where}: destination count {ndst}, expected 0..{MAX_OPERANDS}")
        i += 1
        what = "destination registers"
        if i + ndst > n:
            raise IndexError
        dst = _registers(tokens[i : i + ndst], "destination", where)
        i += ndst
        what = "opcode"
        opcode = tokens[i]
        i += 1
        what = "source count"
        nsrc = _int(tokens[i], 10, what, where)
        if not 0 <= nsrc <= MAX_OPERANDS:
            raise DatasetError(f"{where}: source count {nsrc}, expected 0..{MAX_OPERANDS}")
        i += 1
        what = "source registers"
        if i + nsrc > n:
            raise IndexError
        src = _registers(tokens[i : i + nsrc], "source", where)
        i += nsrc
        what = "mem_width"
        width = _int(tokens[i], 10, what, where)
        i += 1
    except IndexError:
        raise DatasetError(
            f"{where}: instruction line ends before its {what} ({n} words; a truncated line?)"
        ) from None
    if width != 0:  # 0: no memory access
        check_width(width, where)
    op = classify_opcode(opcode)
    # The instruction without its access: PC, opcode, registers and mask checked first. A memory
    # opcode NVBit reports without an access (width 0, such as LDGDEPBAR) replays as misc.
    core = Instruction(
        pc=pc,
        opcode=opcode,
        op="misc" if op in MEMORY_CLASSES else op,
        dst=dst,
        src=src,
        mask=mask,
    )
    core.check(where)
    if width == 0:
        return core, prefix
    lanes = [s for s in range(32) if mask >> s & 1]
    count = len(lanes)
    base, stride = 0, 0
    explicit: tuple[int, ...] | None = None
    what = "address mode"
    try:
        mode = _int(tokens[i], 10, what, where)
        i += 1
        if mode == 0:
            what = f"{count} addresses"
            if i + count > n:
                raise IndexError
            explicit = tuple(_int(t, 16, "address", where) for t in tokens[i : i + count])
        elif mode == 1:
            what = "base address"
            base = _int(tokens[i], 16, "base address", where)
            what = "stride"
            stride = _int(tokens[i + 1], 10, "stride", where)
            if lanes and lanes[-1] - lanes[0] + 1 != count:
                raise DatasetError(
                    f"{where}: address mode 1 (base, stride) for mask {mask:#010x}, whose active"
                    " lanes are not one run; expected mode 0 or 2 (the tracer writes mode 1 only"
                    " for one run of lanes)"
                )
        elif mode == 2:
            what = "base address"
            base = _int(tokens[i], 16, "base address", where)
            what = f"{max(count - 1, 0)} address deltas"
            if i + count > n:
                raise IndexError
            out = [base]
            for t in tokens[i + 1 : i + count]:
                out.append(out[-1] + _int(t, 10, "address delta", where))
            explicit = tuple(out[:count])
            base = 0
        else:
            raise DatasetError(f"{where}: address mode {mode}, expected 0, 1 or 2")
    except IndexError:
        raise DatasetError(
            f"{where}: instruction line ends before its {what} ({n} words; a truncated line?)"
        ) from None
    if not lanes:  # nothing accessed: whatever the tracer wrote for the addresses is unused
        base, stride, explicit = 0, 0, ()
    first = explicit[0] if explicit else (base if lanes else None)
    if op not in MEMORY_CLASSES:
        if op not in ("int", "misc"):  # an arithmetic, control or sync opcode has no access
            Instruction(
                pc=pc, opcode=opcode, op=op, dst=dst, src=src, mask=mask, width=width
            ).check(where)
        # An opcode simgpu does not place in a memory class (CCTL, QSPC, UTMALDG, ...): its
        # addresses are checked, then the instruction replays as non-memory.
        if explicit is None:
            check_addresses(base, stride, count, where)
        else:
            check_address_list(explicit, count, where)
        return core, prefix
    inst = Instruction(
        pc=pc,
        opcode=opcode,
        op=op,
        dst=dst,
        src=src,
        mask=mask,
        space=_place(opcode, first, windows),
        width=width,
        base=base,
        stride=stride,
        addrs=explicit,
    )
    inst.check(where)
    return inst, prefix


def _lines(path: Path, limit: int, what: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of a bounded UTF-8 text file."""
    total = 0
    try:
        with open_input(path, limit, what) as handle:
            n = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                n += 1
                total += len(raw)
                if total > limit:
                    raise DatasetError(
                        f"{path}: more than {format_bytes(limit)} (it grew while read);"
                        f" expected at most {format_bytes(limit)} for {what}"
                    )
                if len(raw) > MAX_LINE_BYTES:
                    raise DatasetError(
                        f"{path}:{n}: line longer than {format_bytes(MAX_LINE_BYTES)}"
                        " (not a trace line)"
                    )
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DatasetError(
                        f"{path}:{n}: not UTF-8 text (byte {raw[exc.start]:#04x} at column"
                        f" {exc.start + 1})"
                    ) from None
                yield n, text.strip()
    except UnusableFile as exc:
        raise DatasetError(f"{path}: {exc.got}; expected {exc.expected}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None


def _count(line: str, key: str, hi: int, where: str) -> int:
    text = line.partition("=")[2].strip()
    if not re.fullmatch(r"\d{1,20}", text) or int(text) > hi:
        raise DatasetError(f"{where}: {key} = {text[:40]!r}, expected a whole number 0..{hi}")
    return int(text)


def read_traceg(path: str | Path) -> AccelSimKernel:
    """Parse one ``.traceg`` kernel trace; errors name the file and line."""
    path = Path(path)
    header: dict[str, str] = {}
    blocks: dict[int, list[list[Instruction]]] = {}
    launch: KernelLaunch | None = None
    windows: list[tuple[int, str]] = []
    version = 0
    binary = 0
    lineinfo = False
    in_tb = False
    tb_index = -1
    tb_line = 0
    tb_insts = 0
    warp = -1
    warps_seen: set[int] = set()
    blocks_seen: dict[int, int] = {}  # block -> line of its 'thread block =' header
    expected: dict[tuple[int, int], tuple[int, int]] = {}  # (block, warp) -> (insts, line)
    last_line = 0

    def start(where: str) -> KernelLaunch:
        nonlocal windows, version, binary, lineinfo
        if not header:
            raise DatasetError(f"{where}: no header ('-kernel name = ...' lines) before the trace")
        for key in ("kernel name", "grid dim", "block dim"):
            if key not in header:
                raise DatasetError(f"{where}: header lacks '-{key} = ...'")
        grid = _dims(header["grid dim"], where)
        block = _dims(header["block dim"], where)
        if min(grid) < 1 or min(block) < 1:
            raise DatasetError(f"{where}: grid {grid} / block {block}, expected sizes >= 1")
        result = KernelLaunch(
            name=header["kernel name"],
            grid=grid,
            block=block,
            regs_per_thread=_header_int(header, "nregs", 0, MAX_REGS_PER_THREAD, where),
            shared_bytes=_header_int(header, "shmem", 0, MAX_SHARED_BYTES, where),
            meta={"source": "accelsim", **header},
        )
        check_launch(result, where)
        version = _header_int(header, "accelsim tracer version", 0, 1000, where)
        binary = _header_int(header, "binary version", 0, 10**6, where)
        flag = header.get("enable lineinfo", "0").strip()
        if flag not in ("0", "1"):
            raise DatasetError(f"{where}: -enable lineinfo = {flag[:40]!r}, expected 0 or 1")
        lineinfo = flag == "1"
        windows = _windows(header, where)
        return result

    def warps_of(b: int) -> list[list[Instruction]]:
        assert launch is not None
        if b not in blocks:
            blocks[b] = [[] for _ in range(launch.warps_per_block())]
        return blocks[b]

    for n, line in _lines(path, MAX_TRACEG_BYTES, "one .traceg kernel trace"):
        last_line = n
        where = f"{path}:{n}"
        if not line:
            continue
        if line.startswith("-") and launch is None:
            key, sep, value = line[1:].partition("=")
            if not sep:
                raise DatasetError(f"{where}: header line {line[:60]!r}, expected '-key = value'")
            header[key.strip()] = value.strip()
            if len(header) > MAX_HEADER_LINES:
                raise DatasetError(
                    f"{where}: more than {MAX_HEADER_LINES} header lines (not a kernel trace)"
                )
            continue
        if line.startswith("#"):
            if line.startswith("#BEGIN_TB"):
                if launch is None:
                    launch = start(where)
                if in_tb:
                    raise DatasetError(f"{where}: #BEGIN_TB inside an open thread block")
                in_tb, tb_index, warp, tb_line, tb_insts = True, -1, -1, n, 0
                warps_seen = set()
            elif line.startswith("#END_TB"):
                if not in_tb:
                    raise DatasetError(f"{where}: #END_TB without #BEGIN_TB")
                if tb_insts == 0:
                    raise DatasetError(
                        f"{path}:{tb_line}: thread block section (lines {tb_line}-{n}) holds no"
                        " instructions"
                    )
                in_tb = False
            continue
        if launch is None:
            launch = start(where)
        if line.startswith("thread block"):
            if not in_tb:
                raise DatasetError(f"{where}: 'thread block =' outside #BEGIN_TB/#END_TB")
            _, _, value = line.partition("=")
            parts = value.split(",")
            if len(parts) != 3 or not all(re.fullmatch(r"\s*\d{1,20}\s*", p) for p in parts):
                raise DatasetError(f"{where}: thread block {value.strip()[:40]!r}, expected x,y,z")
            x, y, z = (int(p) for p in parts)
            if not (
                0 <= x < launch.grid[0] and 0 <= y < launch.grid[1] and 0 <= z < launch.grid[2]
            ):
                raise DatasetError(
                    f"{where}: thread block ({x},{y},{z}) outside grid {launch.grid}"
                )
            tb_index = launch.block_index(x, y, z)
            if tb_index in blocks_seen:
                raise DatasetError(
                    f"{where}: thread block ({x},{y},{z}) traced twice (first at line"
                    f" {blocks_seen[tb_index]})"
                )
            blocks_seen[tb_index] = n
            warps_of(tb_index)
            warp = -1
            warps_seen = set()
            continue
        if line.startswith("warp"):
            if not in_tb or tb_index < 0:
                raise DatasetError(f"{where}: 'warp =' before 'thread block ='")
            warp = _count(line, "warp", 1 << 20, where)
            if not warp < launch.warps_per_block():
                raise DatasetError(
                    f"{where}: warp {warp} outside 0..{launch.warps_per_block() - 1}"
                )
            if warp in warps_seen:
                raise DatasetError(f"{where}: warp {warp} listed twice in thread block {tb_index}")
            warps_seen.add(warp)
            continue
        if line.startswith("insts"):
            if not in_tb or tb_index < 0 or warp < 0:
                raise DatasetError(f"{where}: 'insts =' before 'warp ='")
            expected[(tb_index, warp)] = (_count(line, "insts", _MAX_INSTS, where), n)
            continue
        if not in_tb:
            raise DatasetError(f"{where}: instruction outside #BEGIN_TB/#END_TB")
        inst, prefix = _parse_inst(line.split(), version, lineinfo, windows, where)
        b, w = tb_index, warp
        if prefix is not None:
            px, py, pz, pw = prefix
            if not (
                0 <= px < launch.grid[0]
                and 0 <= py < launch.grid[1]
                and 0 <= pz < launch.grid[2]
                and 0 <= pw < launch.warps_per_block()
            ):
                raise DatasetError(
                    f"{where}: block ({px},{py},{pz}) warp {pw} outside grid {launch.grid} x"
                    f" {launch.warps_per_block()} warps"
                )
            if b < 0 or w < 0:
                b, w = launch.block_index(px, py, pz), pw
        if b < 0 or w < 0:
            raise DatasetError(f"{where}: instruction before 'thread block =' / 'warp ='")
        warps_of(b)[w].append(inst)
        tb_insts += 1
    if launch is None:
        if header:
            raise DatasetError(
                f"{path}: a header but no thread blocks (no #BEGIN_TB): the trace holds no"
                " instructions"
            )
        raise DatasetError(f"{path}: empty trace (no header, no instructions)")
    if in_tb:
        raise DatasetError(
            f"{path}:{last_line}: truncated: the thread block opened at line {tb_line} has no"
            " #END_TB"
        )
    if not blocks:
        raise DatasetError(f"{path}: no thread blocks: the trace holds no instructions")
    for (b, w), (count, n) in expected.items():
        got = len(blocks[b][w])
        if got != count:
            raise DatasetError(
                f"{path}:{n}: block {b} warp {w} declares insts = {count} but has {got}"
                " (truncated or corrupt trace)"
            )
    return AccelSimKernel(
        trace=ListTrace(launch, blocks, source=str(path)),
        header=header,
        tracer_version=version,
        binary_version=binary,
    )


#: A kernel trace named in ``kernelslist.g``: a plain file name in the list's folder.
_TRACE_NAME = re.compile(r"[A-Za-z0-9_+=@,-][A-Za-z0-9._+=@,-]{0,250}\.traceg")


def read_kernelslist(path: str | Path) -> KernelList:
    """Parse ``kernelslist.g`` (kernel trace files in its folder, named without a path)."""
    path = Path(path)
    if path.is_dir():
        path = path / "kernelslist.g"
    out = KernelList(path=path)
    for n, line in _lines(path, MAX_KERNELSLIST_BYTES, "a kernelslist.g"):
        if not line or line.startswith("#"):
            continue
        if line.startswith("Memcpy"):
            parts = [p.strip() for p in line.split(",")]
            address = _hex(parts[1]) if len(parts) > 1 else None
            nbytes = parts[2] if len(parts) > 2 else ""
            if (
                address is None
                or not 0 <= address < ADDRESS_LIMIT
                or not re.fullmatch(r"\d{1,20}", nbytes)
                or int(nbytes) >= ADDRESS_LIMIT
            ):
                raise DatasetError(
                    f"{path}:{n}: {line[:80]!r}, expected 'MemcpyHtoD,0xADDR,BYTES' (a 64-bit"
                    " address and a byte count)"
                )
            out.memcpys.append(MemcpyCommand(address, int(nbytes)))
            continue
        if not _TRACE_NAME.fullmatch(line):
            raise DatasetError(
                f"{path}:{n}: kernel trace {line[:80]!r}, expected the name of a .traceg file in"
                " the same folder (no path; raw .trace files need Accel-Sim's"
                " post-traces-processing first)"
            )
        kernel = path.parent / line
        if not kernel.exists():
            raise DatasetError(f"{path}:{n}: kernel trace {line!r} not found next to the list")
        out.kernels.append(kernel)
    return out


def load_accelsim(path: str | Path) -> list[AccelSimKernel]:
    """Every kernel of an Accel-Sim trace folder (or of one ``.traceg`` file)."""
    path = Path(path)
    if path.is_dir() or path.name == "kernelslist.g":
        kernels = read_kernelslist(path).kernels
        if not kernels:
            where = path / "kernelslist.g" if path.is_dir() else path
            raise DatasetError(f"{where}: lists no kernel traces")
        return [read_traceg(k) for k in kernels]
    return [read_traceg(path)]
