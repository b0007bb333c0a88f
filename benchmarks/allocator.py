"""TensorFlow's CPU allocator, malloc against its BFC pool, side by side (issue #11; ``vaecf/tfenv.py``).

    python -m benchmarks.allocator [--rounds N] [--batch-sizes 500,4096] [--out FILE]

Each round runs ``vaecf bench`` (sparse input, both precisions) once per allocator in fresh
child processes, in alternating order; the record keeps every child's rows and, per precision
and batch size, the median over rounds of each allocator's users/s, its p10 / median (the
steadiness of steps), the seconds of the output layer outside its three GEMMs (``--breakdown``)
and the median of the per-round ratios; a markdown table of it goes
beside the record (``.md``). Strict JSON; nothing runs on import (asv imports every module in
``benchmarks/``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vaecf.io import atomic_write, read_json, write_json
from vaecf.provenance import machine_name
from vaecf.tfenv import ALLOCATOR_ENV

REPO = Path(__file__).resolve().parent.parent
ALLOCATORS = {"malloc": "false", "bfc": "true"}
PRECISIONS = ("float32", "mixed_bfloat16")


def run_bench(allocator: str, precision: str, batch_sizes: str, steps: int, out: Path) -> dict[str, Any]:
    """One ``vaecf bench`` child under ``allocator``; its record."""
    env = {**os.environ, ALLOCATOR_ENV: ALLOCATORS[allocator], "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "vaecf", "bench", "--inputs", "sparse", "--batch-sizes", batch_sizes,
                    "--precision", precision, "--steps", str(steps), "--breakdown", "--out", str(out)],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return read_json(out)


def allocator_summary(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per precision and batch size: each allocator's medians over rounds, and bfc/malloc."""
    rows = []
    for precision in PRECISIONS:
        batches = sorted({r["batch_size"] for rnd in rounds for r in rnd[precision]["malloc"]["rows"]})
        for batch in batches:
            # Each allocator's row of this batch size, one per round.
            measured = {allocator: [next(r for r in rnd[precision][allocator]["rows"] if r["batch_size"] == batch)
                                    for rnd in rounds] for allocator in ALLOCATORS}
            row: dict[str, Any] = {"precision": precision, "batch_size": batch}
            for allocator, runs in measured.items():
                u = [r["users_per_s"] for r in runs]
                row[allocator] = {"users_per_s": float(np.median([x["median"] for x in u])),
                                  "p10_over_median": float(np.median([x["p10"] / x["median"] for x in u])),
                                  "output_outside_gemms_s": float(np.median(
                                      [r["breakdown_s"]["output"] - r["breakdown_s"]["output_gemms"] for r in runs]))}
            row["bfc_over_malloc"] = float(np.median([b["users_per_s"]["median"] / m["users_per_s"]["median"]
                                                      for b, m in zip(measured["bfc"], measured["malloc"])]))
            rows.append(row)
    return rows


def markdown_table(record: dict[str, Any]) -> str:
    """The summary as a table: users/s and p10 / median per allocator, and the ratio."""
    rounds = len(record["rounds"])
    lines = [f"| precision | batch | malloc: users/s | p10 / median | output layer outside its GEMMs | "
             f"BFC: users/s | p10 / median | output layer outside its GEMMs | BFC / malloc (median of {rounds} "
             "rounds) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in record["summary"]:
        cells = [f"{a['users_per_s']:,.0f} | {a['p10_over_median']:.2f} | {a['output_outside_gemms_s'] * 1e3:,.0f} ms"
                 for a in (row["malloc"], row["bfc"])]
        lines.append(f"| {row['precision']} | {row['batch_size']:,} | {cells[0]} | {cells[1]} | "
                     f"{row['bfc_over_malloc']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", default="500,4096")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "results" / machine_name() / "bench-allocator.json")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds {args.rounds} / --steps {args.steps}: each must be >= 1")
    if not all(b.isdigit() and int(b) >= 1 for b in args.batch_sizes.split(",")):
        parser.error(f"--batch-sizes {args.batch_sizes!r}: comma-separated integers, each >= 1")
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            order = list(ALLOCATORS) if k % 2 == 0 else list(reversed(ALLOCATORS))
            rnd: dict[str, Any] = {p: {} for p in PRECISIONS}
            for precision in PRECISIONS:
                for allocator in order:
                    out = Path(tmp) / f"{k}-{precision}-{allocator}.json"
                    try:
                        rnd[precision][allocator] = run_bench(allocator, precision, args.batch_sizes, args.steps, out)
                    except subprocess.CalledProcessError as e:  # the child printed its own error
                        print(f"benchmarks.allocator: vaecf bench ({precision}, {allocator}) failed with exit "
                              f"code {e.returncode}; nothing written", file=sys.stderr)
                        return 1
            rounds.append(rnd)
    # The header of the first child's record (it knows TensorFlow's side), naming this command.
    machine = {**rounds[0][PRECISIONS[0]]["malloc"]["machine"], "command": sys.argv}
    record = {"argv": sys.argv, "machine": machine,
              "summary": allocator_summary(rounds), "rounds": rounds}
    write_json(args.out, record)
    table = markdown_table(record)
    atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(table))
    print(table, end="")
    print(f"wrote {args.out} and its .md table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
