"""``python -m ablations``: run a ladder, calibrate its quality data, redraw a run's charts, list ladders.

    python -m ablations run [--ladder attribution] [--budget quick] [--dataset SPEC]
    python -m ablations calibrate [--budget quick]
    python -m ablations plot results/<machine>/<run-id> [...]
    python -m ablations list
    python -m ablations docs                            # refresh the README's and docs' tables
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the children's TensorFlow start-up chatter is not ours
    p = argparse.ArgumentParser(prog="python -m ablations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) a ladder", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--ladder", default=DEFAULT_LADDER, help="a name in ablations/ladders or a .toml path")
    run.add_argument("--budget", choices=sorted(BUDGETS), default="quick",
                     help="quick: " + BUDGETS["quick"].quality_dataset + "; full: " + BUDGETS["full"].quality_dataset)
    run.add_argument("--dataset", help="quality data instead of the budget's (a dataset name or synthetic spec)")
    run.add_argument("--source", type=Path, help="local archive or folder for --dataset")
    run.add_argument("--results", type=Path, default=Path("results"), help="where run folders go")
    run.add_argument("--out", type=Path, help="run folder (default RESULTS/<machine>/<ladder>-<budget>)")
    run.add_argument("--allow-cpu", action="store_true",
                     help="run a GPU ladder without a GPU, float16 as written (checks the code paths; CI)")
    cal = sub.add_parser("calibrate", help="train the paper's recipe long on a budget's quality data (the target)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cal.add_argument("--budget", choices=sorted(BUDGETS), default="quick", help="whose quality data")
    cal.add_argument("--dataset", help="quality data instead of the budget's")
    cal.add_argument("--source", type=Path, help="local archive or folder for --dataset")
    cal.add_argument("--results", type=Path, default=Path("results"), help="calibrations go to RESULTS/calibration")
    plot = sub.add_parser("plot", help="redraw tables and charts from a run's records (no training)")
    plot.add_argument("runs", type=Path, nargs="+", help="run folders")
    sub.add_parser("list", help="list the ladders")
    sub.add_parser("docs", help="refresh the tables that README.md and docs/ copy from records")
    args = p.parse_args(argv)
    try:
        if args.command == "run":
            from ablations.runner import run_ladder

            run_dir = run_ladder(args.ladder, args.budget, dataset=args.dataset, source=args.source,
                                 results=args.results, out=args.out, allow_cpu=args.allow_cpu)
            print((run_dir / "table.md").read_text())
            print("charts: " + ", ".join(str(run_dir / f"{c}.png") for c in ("ladder", "quality_vs_time",
                                                                             "time_to_target")))
        elif args.command == "calibrate":
            from ablations.runner import calibrate_only

            print(f"calibration: {calibrate_only(args.budget, args.dataset, args.source, args.results)}")
        elif args.command == "plot":
            from ablations.report import write_report

            for run_dir in args.runs:
                if not (run_dir / "run.json").is_file():
                    raise VaecfError(f"{run_dir}: not a ladder run folder (no run.json)")
                write_report(run_dir)
                print(f"redrew {run_dir}")
        elif args.command == "docs":
            from ablations.docs import sync

            for page in sync():
                print(f"refreshed {page}")
        else:
            for path in sorted(LADDERS.glob("*.toml")):
                print(f"{path.stem:16s} {Ladder.load(path).description}")
    except VaecfError as e:
        print(f"ablations: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # --out or --results where a folder cannot be made or written
        print(f"ablations: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablations: interrupted; finished measurements are kept and the same command resumes",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
