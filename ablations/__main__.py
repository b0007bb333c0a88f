"""``python -m ablations``: run a ladder, calibrate its quality data, redraw a run's charts, list ladders.

    python -m ablations run [--ladder attribution] [--budget quick] [--dataset SPEC]
    python -m ablations calibrate [--budget quick]
    python -m ablations plot results/<machine>/<run-id> [...]
    python -m ablations report results/<machine>/<run-id> [--out FILE.html]   # the run in one HTML file
    python -m ablations agree RUN RUN [--out FILE.md]   # do two runs agree on every measured difference?
    python -m ablations list
    python -m ablations docs                            # refresh the README's and docs' tables
    python -m ablations rates [RUN]                     # probe this machine's rates (the cost model's inputs)
    python -m ablations project RUN --onto v100x4       # the run's ladder projected onto other hardware
    python -m ablations project RUN --onto here         # the CPU check: every step predicted vs measured
    python -m ablations project --ladder case-study --onto v100x4 --probe RATES   # a ladder with no run
    python -m ablations heldout                         # the cost model against NVIDIA's and the talk's figures
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ablations.ladder import BUDGETS, LADDERS, Ladder
from vaecf.errors import VaecfError, exit_code

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
    run.add_argument("--quiet", action="store_true", help="no progress (bars on a terminal, lines elsewhere) "
                                                          "and no phase lines; the table is still printed")
    run.add_argument("--allow-cpu", action="store_true",
                     help="run a GPU ladder without a GPU, float16 as written (checks the code paths; CI)")
    run.add_argument("--wait-quiet", metavar="SECONDS", default="0", help="before each round of timing windows, "
                     "wait up to SECONDS for other processes to use under 10%% of the CPUs; then time anyway, "
                     "recording that it was not quiet (0: no wait)")
    cal = sub.add_parser("calibrate", help="train the paper's recipe long on a budget's quality data (the target)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cal.add_argument("--budget", choices=sorted(BUDGETS), default="quick", help="whose quality data")
    cal.add_argument("--dataset", help="quality data instead of the budget's")
    cal.add_argument("--source", type=Path, help="local archive or folder for --dataset")
    cal.add_argument("--results", type=Path, default=Path("results"), help="calibrations go to RESULTS/calibration")
    plot = sub.add_parser("plot", help="redraw tables and charts from a run's records (no training)")
    plot.add_argument("runs", type=Path, nargs="+", help="run folders")
    report = sub.add_parser("report", help="the run's tables, charts and one self-contained HTML page, from its "
                                           "records (no training)")
    report.add_argument("run", type=Path, help="run folder")
    report.add_argument("--out", type=Path, help="the HTML page (default RUN/report.html)")
    agree = sub.add_parser("agree", help="compare two runs' verdicts: exit 1 when they differ on one that either "
                                         "calls a measured difference")
    agree.add_argument("runs", type=Path, nargs=2, help="two run folders of the same ladder")
    agree.add_argument("--out", type=Path, help="also write the answer and both runs' verdicts side by side as "
                       "Markdown, for the pages to include")
    sub.add_parser("list", help="list the ladders")
    sub.add_parser("docs", help="refresh the tables that README.md and docs/ copy from records")
    rates = sub.add_parser("rates", help="probe this machine's rates at a run's step shapes (rates.json)")
    rates.add_argument("run", type=Path, nargs="?", help="run folder (default: the held-out check's shapes)")
    rates.add_argument("--out", type=Path, help="record path (default RUN/rates.json, or "
                       "results/<machine>/rates-heldout.json)")
    project = sub.add_parser("project", help="project a run's ladder onto described hardware (no training)")
    project.add_argument("run", type=Path, nargs="?", help="run folder (or --ladder)")
    project.add_argument("--onto", required=True, help="v100x1, v100x4, v100x8, a100x8, h100x1, ..., or here")
    project.add_argument("--probe", type=Path, help="rates record (default RUN/rates.json)")
    project.add_argument("--ladder", help="a ladder with no run, at the full budget's shapes (needs --probe)")
    project.add_argument("--out", type=Path, help="with --ladder: writes OUT.{md,json,png,svg} "
                         "(default results/projection/LADDER-ONTO)")
    held = sub.add_parser("heldout", help="predict NVIDIA's published throughputs and the talk's step factors")
    held.add_argument("--probe", type=Path, required=True,
                      help="rates record of this machine (python -m ablations rates)")
    held.add_argument("--out", type=Path, default=Path("results/projection/heldout"),
                      help="writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    return exit_code("ablations", lambda: _command(args),
                     "finished measurements are kept and the same command resumes")


def _command(args: argparse.Namespace) -> int | None:
    """Run the parsed command; what goes wrong becomes an exit code in ``main`` (``vaecf.errors.exit_code``)."""
    if args.command == "run":
        from ablations.disturbance import Policy, parse_seconds
        from ablations.runner import run_ladder, say
        from vaecf.progress import set_quiet

        policy = Policy(wait_quiet_s=parse_seconds(args.wait_quiet, "--wait-quiet"))
        set_quiet(args.quiet)
        run_dir = run_ladder(args.ladder, args.budget, dataset=args.dataset, source=args.source,
                             results=args.results, out=args.out, allow_cpu=args.allow_cpu,
                             log=(lambda _: None) if args.quiet else say, policy=policy)
        print((run_dir / "table.md").read_text())
        print("charts: " + ", ".join(str(run_dir / f"{c}.png") for c in ("ladder", "quality_vs_time",
                                                                         "time_to_target")))
        from ablations.project import PROJECTED, project_run, summary_line

        for onto in PROJECTED:  # tables and charts: python -m ablations project RUN --onto ...
            print(summary_line(project_run(run_dir, onto)))
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
    elif args.command == "report":
        from ablations.report import write_report

        if not (args.run / "run.json").is_file():
            raise VaecfError(f"{args.run}: not a ladder run folder (no run.json)")
        page = args.out or args.run / "report.html"
        write_report(args.run, page)
        print(f"report: {page}")
    elif args.command == "agree":
        from ablations.report import derive, load_run
        from ablations.verdicts import disagreements

        for run_dir in args.runs:
            if not (run_dir / "run.json").is_file():
                raise VaecfError(f"{run_dir}: not a ladder run folder (no run.json)")
        if args.out and not args.out.parent.is_dir():
            raise VaecfError(f"--out {args.out}: its folder {args.out.parent} does not exist")
        derived = [derive(load_run(run_dir)) for run_dir in args.runs]
        differ = disagreements(*derived)
        print("\n".join(differ) or "the two runs agree on every verdict either calls a measured difference")
        if args.out:
            from ablations.summary import agreement
            from vaecf.io import atomic_write

            text = agreement(args.runs, derived)
            atomic_write(args.out, lambda tmp: tmp.write_text(text))
        return 1 if differ else 0
    elif args.command in ("rates", "project", "heldout"):
        from ablations.project import command

        command(args)
    elif args.command == "docs":
        from ablations.docs import sync

        for page in sync():
            print(f"refreshed {page}")
    else:
        for path in sorted(LADDERS.glob("*.toml")):
            print(f"{path.stem:16s} {Ladder.load(path).description}")
    return None


if __name__ == "__main__":
    sys.exit(main())
