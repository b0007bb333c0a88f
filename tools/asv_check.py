"""Does asv flag the slowdowns it measures, and only those? Plant one (or none) and run `asv continuous`.

    python tools/asv_check.py planted [-b REGEX] [--out FILE]
    python tools/asv_check.py unchanged [-b REGEX] [--out FILE]

From a clean tree at commit C, this makes a scratch commit on top of C in a temporary worktree
(kept reachable under ``refs/asv-check/<mode>`` while it runs): ``planted`` adds one output-size
GEMM to every training step (``PLANT``: its forward and its two gradient GEMMs, about 1.5-1.9x
the step), ``unchanged`` changes nothing (an empty commit: C against itself). It then runs
``asv continuous --factor 1.1`` between C and the scratch commit on the benchmarks matching REGEX
(default: the training step), reads ``asv compare``'s table, and writes the record
(``results/<machine>/asv-check-<mode>.json``, with the provenance header): every row, its ratio,
whether asv flagged it. It passes (exit 0) when ``planted`` has every float32 row flagged, or
``unchanged`` none. `nox -s bench -- planted` / `-- unchanged` run it in the nox session.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: vaecf from this checkout

from vaecf.io import write_json  # noqa: E402
from vaecf.provenance import header, machine_name  # noqa: E402

FACTOR = 1.1
DEFAULT_BENCH = r"TrainStep\.time_step"
PLANT_FILE = "vaecf/model.py"
PLANT_ANCHOR = "    def neg_log_likelihood(self, h: tf.Tensor, x: Batch) -> tf.Tensor:\n"
PLANT = '''    def neg_log_likelihood(self, h: tf.Tensor, x: Batch) -> tf.Tensor:
        extra = tf.matmul(h * 0.5, self._cast(self.decoder[-1][0]))  # planted by tools/asv_check.py: one more GEMM
        return self._planted_nll(h, x) + 0.0 * tf.cast(tf.reduce_mean(extra), tf.float32)

    def _planted_nll(self, h: tf.Tensor, x: Batch) -> tf.Tensor:
'''
"""The regression: an output-size product computed once more, its result kept in the loss (times 0, so
the numbers do not change) so that neither it nor its gradients can be pruned. Of ``h * 0.5``, not of
``h``: grappler merges a second ``matmul(h, w)`` with the dense path's own (common subexpressions),
and a first try planted nothing on the dense and bfloat16 paths."""
ROW = re.compile(r"^\|\s*(?P<mark>[-+x!* ]?)\s*\|(?P<before>[^|]*)\|(?P<after>[^|]*)\|"
                 r"(?P<ratio>[^|]*)\|(?P<name>[^|]*)\|$")
"""A row of ``asv compare``'s (GitHub-style) table: change mark, before, after, ratio, benchmark."""


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def scratch_commit(mode: str, base: str) -> str:
    """A commit on top of ``base``: the planted regression, or no change at all; its hash."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        git("worktree", "add", "--detach", str(tree), base)
        try:
            if mode == "planted":
                path = tree / PLANT_FILE
                source = path.read_text()
                if PLANT_ANCHOR not in source:
                    raise SystemExit(f"asv_check: {PLANT_FILE} no longer has {PLANT_ANCHOR.strip()!r}: update PLANT")
                path.write_text(source.replace(PLANT_ANCHOR, PLANT, 1))
            git("-c", "user.name=asv_check", "-c", "user.email=asv_check@localhost", "commit", "--allow-empty",
                "-qam", f"asv_check: {mode} on {base[:12]}", cwd=tree)
            head = git("rev-parse", "HEAD", cwd=tree)
            git("update-ref", f"refs/asv-check/{mode}", head)
        finally:
            git("worktree", "remove", "--force", str(tree))
    return head


def parse_compare(text: str) -> list[dict[str, Any]]:
    """The rows of ``asv compare``'s tables: benchmark, before, after, ratio, and whether asv flagged it."""
    rows = []
    for line in text.splitlines():
        m = ROW.match(line.strip())
        if not m or m["name"].strip().startswith(("Benchmark", "-")):
            continue
        ratio = m["ratio"].strip()
        number = re.sub(r"[^0-9.]", "", ratio)
        rows.append({"benchmark": m["name"].strip(), "before": m["before"].strip(), "after": m["after"].strip(),
                     "ratio": float(number) if number else None, "mark": m["mark"].strip(),
                     "flagged": m["mark"].strip() == "+", "insignificant": ratio.startswith("~")})
    return rows


def verdict(mode: str, rows: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether asv did what it should: every float32 row flagged (planted), or none flagged (unchanged)."""
    if not rows:
        return False, "asv compare listed no rows"
    if mode == "planted":
        missed = [r["benchmark"] for r in rows if "'float32'" in r["benchmark"] and not r["flagged"]]
        return not missed, f"float32 rows not flagged: {missed}" if missed else "every float32 row flagged"
    flagged = [r["benchmark"] for r in rows if r["flagged"]]
    return not flagged, f"flagged without a change: {flagged}" if flagged else "no row flagged"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/asv_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("planted", "unchanged"))
    p.add_argument("-b", "--bench", default=DEFAULT_BENCH, help=f"benchmarks to run (regex; default: {DEFAULT_BENCH})")
    p.add_argument("--out", type=Path, help="the record (default: results/<machine>/asv-check-<mode>.json)")
    args = p.parse_args(argv)
    if git("status", "--porcelain", "--untracked-files=no"):
        p.error("the tree has uncommitted changes: the check compares commits, so commit them first")
    base = git("rev-parse", "HEAD")
    head = scratch_commit(args.mode, base)
    command = ["asv", "continuous", "--show-stderr", "--factor", str(FACTOR), "-b", args.bench, base, head]
    load_before = os.getloadavg()
    start = time.perf_counter()
    try:
        subprocess.run(command, cwd=REPO)  # its output as it runs; a flagged row makes it exit 1, which we judge
        compare = subprocess.run(["asv", "compare", "--split", "--factor", str(FACTOR), base, head], cwd=REPO,
                                 text=True, capture_output=True, check=True)
    finally:
        git("update-ref", "-d", f"refs/asv-check/{args.mode}")
    seconds = time.perf_counter() - start
    rows = parse_compare(compare.stdout)
    ok, why = verdict(args.mode, rows)
    out = args.out or REPO / "results" / machine_name() / f"asv-check-{args.mode}.json"
    # On 2 cores one other busy process doubles a step (TensorFlow's two threads wait for the slower):
    # the record says how loaded the machine was and at what priority asv ran (``nice -n -20`` as root
    # leaves other work a fraction of a percent of a shared core).
    write_json(out, {"machine": header(), "mode": args.mode, "base": base, "head": head, "factor": FACTOR,
                     "asv_command": command, "asv_seconds": seconds, "niceness": os.nice(0),
                     "load_average_before": load_before, "load_average_after": os.getloadavg(),
                     "passed": ok, "verdict": why, "rows": rows})
    print(f"asv_check {args.mode}: {'passed' if ok else 'FAILED'}: {why} ({seconds / 60:.1f} min); wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
