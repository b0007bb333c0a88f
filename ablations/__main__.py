"""``python -m ablations``: run a ladder, redraw a run's charts, or list the ladders.

    python -m ablations run [--ladder attribution] [--dataset synthetic:small] [--budget quick]
    python -m ablations plot results/<machine>/<run-id> [...]
    python -m ablations list
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ablations.ladder import BUDGETS, LADDERS, Ladder
from vaecf.errors import VaecfError

DEFAULT_LADDER = "attribution"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = argparse.ArgumentParser(prog="python -m ablations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) a ladder")
    run.add_argument("--ladder", default=DEFAULT_LADDER, help="a name in ablations/ladders or a .toml path")
    run.add_argument("--dataset", help="default: the budget's (quick: synthetic:small, full: ml-20m)")
    run.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    run.add_argument("--source", type=Path, help="local archive or folder for the dataset")
    run.add_argument("--results", type=Path, default=Path("results"))
    run.add_argument("--out", type=Path, help="run folder (default results/<machine>/<ladder>-<dataset>-<budget>)")
    plot = sub.add_parser("plot", help="redraw tables and charts from a run's records (no training)")
    plot.add_argument("runs", type=Path, nargs="+")
    sub.add_parser("list", help="list the ladders")
    args = p.parse_args(argv)
    try:
        if args.command == "run":
            from ablations.runner import run_ladder

            run_dir = run_ladder(args.ladder, args.dataset, args.budget, results=args.results,
                                 source=args.source, out=args.out)
            print((run_dir / "table.md").read_text())
            print(f"charts: {run_dir / 'ladder.png'}, {run_dir / 'time_to_quality.png'}")
        elif args.command == "plot":
            from ablations.report import write_report

            for run_dir in args.runs:
                write_report(run_dir)
                print(f"redrew {run_dir}")
        else:
            for path in sorted(LADDERS.glob("*.toml")):
                print(f"{path.stem:16s} {Ladder.load(path).description}")
    except (VaecfError, FileNotFoundError) as e:
        print(f"ablations: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
