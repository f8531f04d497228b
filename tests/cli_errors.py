"""The check every hostile-input test makes of a refused command: exit 2, one line on stderr
that starts ``simgpu: error:``, no traceback, and the expected words in it."""

from __future__ import annotations

import time
from typing import Any

from simgpu.cli import main


def fails(capsys: Any, argv: list[str], *expected: str, within_s: float | None = None) -> str:
    """Run ``simgpu argv``; assert it is refused with one clean line (within ``within_s``
    seconds when given) naming each of ``expected``; return the line."""
    t0 = time.perf_counter()
    assert main(argv) == 2
    if within_s is not None:
        assert time.perf_counter() - t0 < within_s
    err = capsys.readouterr().err
    assert err.startswith("simgpu: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    return str(err)
