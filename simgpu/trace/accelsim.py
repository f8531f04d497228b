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
``base + k * stride`` over the active lanes), 2 is ``base`` then one signed delta per further
active lane (each address = previous + delta). ``kernelslist.g`` lists kernel trace files and
``MemcpyHtoD,addr,bytes`` host-to-device copies, in program order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from simgpu.errors import DatasetError
from simgpu.trace.schema import RZ, Instruction, KernelLaunch, ListTrace, classify_opcode

__all__ = [
    "AccelSimKernel",
    "KernelList",
    "MemcpyCommand",
    "read_traceg",
    "read_kernelslist",
    "load_accelsim",
    "opcode_space",
]

#: Size of the shared-memory and local-memory windows above their base addresses, used to
#: place generic LD/ST addresses (Accel-Sim: SHARED_MEM_SIZE_MAX 228 KiB per SM on Hopper;
#: assumption: the window is at least this large on every architecture, which holds since
#: addresses in a window never exceed the block's shared memory size).
SHARED_WINDOW_BYTES = 1 << 24


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


def opcode_space(opcode: str, first_address: int | None, header: dict[str, str]) -> str:
    """Memory space of a memory opcode; generic LD/ST are placed by address window."""
    base = opcode.split(".", 1)[0].upper()
    if base in ("LDG", "STG", "ATOMG", "RED", "LDGSTS"):
        return "global"
    if base in ("LDS", "STS", "ATOMS", "LDSM"):
        return "shared"
    if base in ("LDL", "STL"):
        return "local"
    if base == "LDC":
        return "const"
    if first_address is not None:
        for key, space in (("shmem base_addr", "shared"), ("local mem base_addr", "local")):
            if key in header:
                lo = int(header[key], 16)
                if lo <= first_address < lo + SHARED_WINDOW_BYTES:
                    return space
    return "global"


def _width_from_opcode(opcode: str) -> int:
    """Bytes per lane from the opcode modifiers (.64, .128, .U8, ...), 4 when none."""
    for part in opcode.split(".")[1:]:
        if part.isdigit():
            return int(part) // 8
        if part[:1] in ("U", "S") and part[1:].isdigit():
            return int(part[1:]) // 8
    return 4


_DIM = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)")


def _dims(text: str, where: str) -> tuple[int, int, int]:
    m = _DIM.fullmatch(text.strip())
    if not m:
        raise DatasetError(f"{where}: dimensions {text!r}, expected '(x,y,z)'")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _reg(token: str) -> int | None:
    """R<n> -> n (R255 is RZ); other register files (P, UR, ...) -> None."""
    if len(token) > 1 and token[0] == "R" and token[1:].isdigit():
        n = int(token[1:])
        return n if n <= RZ else None
    return None


def _parse_inst(
    tokens: list[str], version: int, lineinfo: bool, header: dict[str, str], where: str
) -> tuple[Instruction, tuple[int, int, int, int] | None]:
    """One instruction line -> (Instruction, old-format (tb_x, tb_y, tb_z, warp) or None)."""
    i = 0
    prefix = None
    try:
        if version < 3:
            prefix = (int(tokens[0]), int(tokens[1]), int(tokens[2]), int(tokens[3]))
            i = 4
        if lineinfo:
            i += 1
        pc = int(tokens[i], 16)
        mask = int(tokens[i + 1], 16)
        i += 2
        ndst = int(tokens[i])
        i += 1
        dst = [r for r in (_reg(t) for t in tokens[i : i + ndst]) if r is not None and r != RZ]
        i += ndst
        opcode = tokens[i]
        i += 1
        nsrc = int(tokens[i])
        i += 1
        src = [r for r in (_reg(t) for t in tokens[i : i + nsrc]) if r is not None and r != RZ]
        i += nsrc
        width = int(tokens[i])
        i += 1
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"{where}: malformed instruction line ({exc})") from exc
    if mask > 0xFFFFFFFF or ndst < 0 or nsrc < 0:
        raise DatasetError(f"{where}: mask {mask:#x} / counts {ndst},{nsrc} out of range")
    op = classify_opcode(opcode)
    if width <= 0 or op not in ("ld", "st", "atom"):
        # Non-memory (or a memory opcode NVBit reports with width 0, such as LDGDEPBAR).
        if op in ("ld", "st", "atom"):
            op = "misc"
        inst = Instruction(pc=pc, opcode=opcode, op=op, dst=tuple(dst), src=tuple(src), mask=mask)
        return inst, prefix
    lanes = [s for s in range(32) if mask >> s & 1]
    try:
        mode = int(tokens[i])
        i += 1
        if mode == 0:
            addrs = tuple(int(t, 16) for t in tokens[i : i + len(lanes)])
            if len(addrs) != len(lanes):
                raise DatasetError(
                    f"{where}: address mode 0 lists {len(addrs)} addresses for {len(lanes)} lanes"
                )
            base, stride, explicit = (addrs[0] if addrs else 0), 0, addrs
        elif mode == 1:
            base = int(tokens[i], 16)
            stride = int(tokens[i + 1])
            explicit = None
            # Accel-Sim expands base+stride over the first run of consecutive active lanes.
            run = 0
            for s in range(lanes[0] if lanes else 0, 32):
                if mask >> s & 1:
                    run += 1
                else:
                    break
            if lanes and run != len(lanes):
                explicit = tuple(base + k * stride for k in range(run)) + (0,) * (len(lanes) - run)
        elif mode == 2:
            base = int(tokens[i], 16)
            deltas = [int(t) for t in tokens[i + 1 : i + len(lanes)]]
            if len(deltas) != max(len(lanes) - 1, 0):
                raise DatasetError(
                    f"{where}: address mode 2 has {len(deltas)} deltas for {len(lanes)} lanes,"
                    f" expected {max(len(lanes) - 1, 0)}"
                )
            out = [base]
            for d in deltas:
                out.append(out[-1] + d)
            explicit = tuple(out)
            stride = 0
        else:
            raise DatasetError(f"{where}: address mode {mode}, expected 0, 1 or 2")
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"{where}: malformed address list ({exc})") from exc
    if not lanes:
        base, stride, explicit = 0, 0, ()
    first = explicit[0] if explicit else (base if lanes else None)
    space = opcode_space(opcode, first, header)
    if width <= 0:
        width = _width_from_opcode(opcode)
    inst = Instruction(
        pc=pc,
        opcode=opcode,
        op=op,
        dst=tuple(dst),
        src=tuple(src),
        mask=mask,
        space=space,
        width=width,
        base=base,
        stride=stride,
        addrs=explicit,
    )
    return inst, prefix


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("r", encoding="utf-8", errors="strict") as fh:
            for n, line in enumerate(fh, start=1):
                yield n, line.strip()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text trace ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def read_traceg(path: str | Path) -> AccelSimKernel:
    """Parse one ``.traceg`` kernel trace; errors name the file and line."""
    path = Path(path)
    header: dict[str, str] = {}
    blocks: dict[int, list[list[Instruction]]] = {}
    launch: KernelLaunch | None = None
    version = 4
    lineinfo = False
    in_tb = False
    tb_index = -1
    warp = -1
    expected: dict[tuple[int, int], tuple[int, int]] = {}  # (block, warp) -> (insts, line)
    last_line = 0

    def make_launch(where: str) -> KernelLaunch:
        try:
            return KernelLaunch(
                name=header["kernel name"],
                grid=_dims(header["grid dim"], where),
                block=_dims(header["block dim"], where),
                regs_per_thread=int(header.get("nregs", "0")),
                shared_bytes=int(header.get("shmem", "0")),
                meta={"source": "accelsim", **header},
            )
        except KeyError as exc:
            raise DatasetError(f"{where}: header lacks '-{exc.args[0]} = ...'") from exc

    def warps_of(b: int) -> list[list[Instruction]]:
        assert launch is not None
        if b not in blocks:
            blocks[b] = [[] for _ in range(launch.warps_per_block())]
        return blocks[b]

    for n, line in _lines(path):
        last_line = n
        where = f"{path}:{n}"
        if not line:
            continue
        if line.startswith("-") and launch is None:
            key, sep, value = line[1:].partition("=")
            if not sep:
                raise DatasetError(f"{where}: header line {line!r}, expected '-key = value'")
            header[key.strip()] = value.strip()
            continue
        if line.startswith("#"):
            if line.startswith("#BEGIN_TB"):
                if launch is None:
                    launch = make_launch(where)
                    version = int(header.get("accelsim tracer version", "0"))
                    lineinfo = header.get("enable lineinfo", "0") == "1"
                if in_tb:
                    raise DatasetError(f"{where}: #BEGIN_TB inside an open thread block")
                in_tb, tb_index, warp = True, -1, -1
            elif line.startswith("#END_TB"):
                if not in_tb:
                    raise DatasetError(f"{where}: #END_TB without #BEGIN_TB")
                in_tb = False
            continue
        if launch is None:
            launch = make_launch(where)
            version = int(header.get("accelsim tracer version", "0"))
            lineinfo = header.get("enable lineinfo", "0") == "1"
        if line.startswith("thread block"):
            _, _, value = line.partition("=")
            try:
                x, y, z = (int(v) for v in value.split(","))
            except ValueError as exc:
                raise DatasetError(f"{where}: thread block {value.strip()!r}") from exc
            if not (
                0 <= x < launch.grid[0] and 0 <= y < launch.grid[1] and 0 <= z < launch.grid[2]
            ):
                raise DatasetError(
                    f"{where}: thread block ({x},{y},{z}) outside grid {launch.grid}"
                )
            tb_index = launch.block_index(x, y, z)
            warps_of(tb_index)
            continue
        if line.startswith("warp ="):
            warp = int(line.partition("=")[2])
            if not 0 <= warp < launch.warps_per_block():
                raise DatasetError(
                    f"{where}: warp {warp} outside 0..{launch.warps_per_block() - 1}"
                )
            continue
        if line.startswith("insts ="):
            expected[(tb_index, warp)] = (int(line.partition("=")[2]), n)
            continue
        if not in_tb:
            raise DatasetError(f"{where}: instruction outside #BEGIN_TB/#END_TB")
        inst, prefix = _parse_inst(line.split(), version, lineinfo, header, where)
        b, w = tb_index, warp
        if prefix is not None and (b < 0 or w < 0):
            b = launch.block_index(prefix[0], prefix[1], prefix[2])
            w = prefix[3]
        if b < 0 or w < 0:
            raise DatasetError(f"{where}: instruction before 'thread block =' / 'warp ='")
        warps_of(b)[w].append(inst)
    if launch is None:
        raise DatasetError(f"{path}: empty trace (no header)")
    if in_tb:
        raise DatasetError(f"{path}:{last_line}: truncated: thread block {tb_index} has no #END_TB")
    for (b, w), (count, n) in expected.items():
        got = len(blocks.get(b, [[]] * (w + 1))[w])
        if got != count:
            raise DatasetError(
                f"{path}:{n}: block {b} warp {w} declares insts = {count} but has {got}"
                " (truncated or corrupt trace)"
            )
    return AccelSimKernel(
        trace=ListTrace(launch, blocks),
        header=header,
        tracer_version=version,
        binary_version=int(header.get("binary version", "0")),
    )


def read_kernelslist(path: str | Path) -> KernelList:
    """Parse ``kernelslist.g`` (kernel trace files relative to its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "kernelslist.g"
    out = KernelList(path=path)
    for n, line in _lines(path):
        if not line or line.startswith("#"):
            continue
        if line.startswith("Memcpy"):
            parts = line.split(",")
            try:
                out.memcpys.append(MemcpyCommand(int(parts[1], 16), int(parts[2])))
            except (IndexError, ValueError) as exc:
                raise DatasetError(
                    f"{path}:{n}: {line!r}, expected 'MemcpyHtoD,0xADDR,BYTES'"
                ) from exc
            continue
        kernel = path.parent / line
        if not kernel.is_file():
            raise DatasetError(f"{path}:{n}: kernel trace {line!r} not found next to the list")
        out.kernels.append(kernel)
    return out


def load_accelsim(path: str | Path) -> list[AccelSimKernel]:
    """Every kernel of an Accel-Sim trace folder (or of one ``.traceg`` file)."""
    path = Path(path)
    if path.is_dir() or path.name == "kernelslist.g":
        return [read_traceg(k) for k in read_kernelslist(path).kernels]
    return [read_traceg(path)]
