"""How well a validate family's cost measure orders its replays: each row the simulated view of
``simgpu validate`` replays, timed as validate replays it, beside the family's cost of it.

``simgpu validate`` replays a family's rows cheapest first until the family's wall budget is
spent (:func:`simgpu.validate.families.replay_plan`), so the more rows its cost measure puts in
the order of their replays' wall time, the more rows a budget holds. For each row of the family
(in that order) this replays it exactly as validate does (``Workload.simulate`` with the
family's options, in this process), and prints its cost, its wall time and their Spearman rank
correlation, and the same correlation for ``--against`` columns of the measured table (the
stream family ordered its replays by ``blocks`` before; ``array_B`` is the array size). A
steady-state window replays once per process and answers every further size of its mix from
memory, so its later rows take no time: the correlations are given over every replay and over
those not answered from memory.
The cheapest row is replayed once, untimed, before the others: the first replay of a process
loads the compiled simulator.

Usage: ``python experiments/benchmarks/bench_replay_cost.py [--device h100-sxm] [--run
calibration/h100-sxm/20261122T154403Z] [--family stream] [--against blocks,array_B]``
(the stream family: 60 replays, about 2.5 minutes on one core of a shared 2-core machine).
Prints a table and writes it to ``results/bench_replay_cost/<UTC time>/`` (never overwriting).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from simgpu import devices
from simgpu.calibrate.dataset import RunDir
from simgpu.io import results_root, write_table
from simgpu.validate.families import families, params_text, replay_plan, workload_for_row
from simgpu.views import protocol as views

#: A replay shorter than this (seconds) is taken to have been answered from memory (a
#: steady-state window replayed before in this process), and left out of the second correlations.
FROM_MEMORY_S = 0.05


def run(device: str, run_dir: Path, family: str, against: list[str]) -> pd.DataFrame:
    spec = devices.get(device)
    fam = families()[family]
    rows = fam.select(RunDir.open(run_dir).read_table(fam.table))
    missing = [c for c in against if c not in rows.columns]
    if missing:
        raise SystemExit(f"--against {missing}: not columns of {fam.table} "
                         f"(columns: {list(rows.columns)})")
    ws = [workload_for_row(fam, r) for r in rows.to_dict(orient="records")]
    plan = replay_plan(spec, fam, rows, ws, max_sim=None)
    # the first replay of a process loads (or compiles) the simulator: not a row's cost
    first = ws[int(plan.index[0])]
    assert first is not None
    views.estimate("simulated", first, spec, **fam.sim_options)
    out = []
    for k, (i, cost) in enumerate(plan.items()):
        w = ws[int(i)]
        assert w is not None
        row = rows.loc[i]
        t0 = time.perf_counter()
        e = views.estimate("simulated", w, spec, **fam.sim_options)
        wall = time.perf_counter() - t0
        out.append({"order": k, "params": params_text(row, fam.params), "cost": cost,
                    "wall_s": wall, **{c: row[c] for c in against},
                    "time_s": e.get("time_s")})
        print(f"{k:3d} {out[-1]['params']:50s} cost {cost:12.4g}  {wall:7.2f} s", flush=True)
    return pd.DataFrame(out)


def correlations(df: pd.DataFrame, against: list[str]) -> pd.DataFrame:
    """Spearman's rank correlation of each measure with the wall time, over every replay and
    over the replays not answered from memory."""
    rows = []
    for which, sub in (("every replay", df), ("replays not from memory",
                                              df[df["wall_s"] >= FROM_MEMORY_S])):
        for col in ["cost", *against]:
            rho = spearmanr(sub[col].astype(float), sub["wall_s"]).statistic
            rows.append({"rows": which, "n": len(sub), "measure": col,
                         "spearman_vs_wall": float(rho)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="h100-sxm")
    parser.add_argument("--run", default="calibration/h100-sxm/20261122T154403Z")
    parser.add_argument("--family", default="stream")
    parser.add_argument("--against", default="blocks,array_B",
                        help="comma-separated columns of the measured table to rank as well")
    args = parser.parse_args()
    if args.family not in families():
        raise SystemExit(f"--family {args.family!r}: expected one of {sorted(families())}")
    against = [c.strip() for c in args.against.split(",") if c.strip()]
    df = run(args.device, Path(args.run), args.family, against)
    corr = correlations(df, against)
    print()
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print()
    print(corr.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\n{len(df)} replays in {df['wall_s'].sum():.0f} s")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results_root() / "bench_replay_cost" / stamp
    if out.exists():
        raise SystemExit(f"{out} exists; not overwriting")
    paths = write_table(df, out, "bench_replay_cost", parquet=False)
    paths += write_table(corr, out, "correlations", parquet=False)
    print(f"wrote {', '.join(str(p) for p in paths)}")


if __name__ == "__main__":
    main()
