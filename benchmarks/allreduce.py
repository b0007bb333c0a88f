"""What the gradient all-reduce costs on a real link: workers in network namespaces, links shaped by tc.

    python -m benchmarks.allreduce [--workers 2,4] [--rates unlimited,10gbit,1gbit] [--delays none]
                                   [--engines horovod,tf-distribute] [--fp16-at 1gbit] [--steps 6]
                                   [--out results/MACHINE/allreduce.json]

For every engine x workers x link, ``tools.hosts`` makes one namespace ("host") per worker with
that link on each host's sending side, and the workers run ``python -m vaecf.probe --timed-steps``
on ML-20M's shape (the paper's Mult-VAE, 24.5M parameters, 98 MB of float32 gradients, global batch
500): Horovod through ``horovodrun -H h1:1,h2:1,... --gloo`` over ssh from h1, tf.distribute as one
worker per host with a ``TF_CONFIG`` naming the hosts' addresses. Each worker times every step in
parts (``vaecf.probe.timed_steps``): compute, waiting for the slowest worker, and the all-reduce of
the gradients. ``--fp16-at`` adds runs with ``compression=fp16`` at those rates.

Beside each measurement, the ring all-reduce model: ``2(N-1)/N x bytes / rate + 2(N-1) x delay``
(each of N workers sends and receives 2(N-1) chunks of bytes/N, one after another). The workers
share this machine's cores (one intra-op thread each): with more workers than cores, compute is
oversubscribed and users/s says nothing about N machines; read the all-reduce column. The record
notes the load average (the machine is shared). Strict JSON with the provenance header, a markdown
table and a chart beside it. Nothing runs on import (asv imports every module in ``benchmarks/``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vaecf.data.registry import ML20M
from vaecf.io import write_json
from vaecf.provenance import header, machine_name

REPO = Path(__file__).resolve().parent.parent
BATCH = 500
WARMUP = 2
"""Timed steps left out of the medians: tracing and first-touch allocation."""


def ring_seconds(workers: int, gradient_bytes: float, rate_bits: float | None, delay_s: float) -> float | None:
    """The ring all-reduce's time: 2(N-1) transfers of bytes/N per worker, each paying the delay once."""
    if rate_bits is None:
        return None
    return 2 * (workers - 1) / workers * gradient_bytes * 8 / rate_bits + 2 * (workers - 1) * delay_s


def delay_seconds(delay: str | None) -> float:
    if delay is None:
        return 0.0
    return float(delay[:-2]) * (1e-3 if delay.endswith("ms") else 1e-6)


def netem_available() -> bool:
    """Whether this kernel can delay packets (``sch_netem``): tried on a namespace of its own."""
    from tools.hosts import Cluster, HostsError, Link, Spec

    try:
        with Cluster(Spec(hosts=1, prefix="vaecfn", link=Link(delay="50us"), ssh=False)):
            return True
    except HostsError:
        return False


def probe_command(steps: int, compression: str, engine: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "vaecf.probe", "--out", str(out), "--engine", engine, "--kind", "vae",
            "--users", str(BATCH * steps), "--items", str(ML20M.items), "--nnz", str(ML20M.mean_items),
            "--batch-size", str(BATCH), "--dropout-keep", "0.5", "--compression", compression,
            "--timed-steps", str(steps)]


def run_case(engine: str, workers: int, rate: str | None, delay: str | None, compression: str, steps: int,
             timeout: float) -> dict[str, Any]:
    """One world in ``workers`` namespaces; its per-rank step parts and their summary."""
    from tools.hosts import Cluster, Link, Spec, rate_bits, run_each

    spec = Spec(hosts=workers, prefix="vaecfb", link=Link(rate, delay), ssh=engine == "horovod")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
           "TF_NUM_INTRAOP_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    load_before = os.getloadavg()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="allreduce-") as tmp, Cluster(spec) as cluster:
        command = probe_command(steps, compression, engine, Path(tmp))
        if engine == "horovod":
            layout = ",".join(f"{h}:1" for h in spec.hostnames)
            run = [sys.executable, "-m", "vaecf.hvdrun", "-np", str(workers), "--gloo", "-H", layout, *command]
            proc = cluster.popen(0, run, env={**env, "VAECF_WORKER": "1"}, cwd=REPO, stdout=subprocess.DEVNULL)
            code = proc.wait(timeout)
        else:
            code = run_each(cluster, command, per_host=1, env=env, timeout=timeout)
        if code:
            raise RuntimeError(f"{engine} x {workers} at {rate or 'unlimited'}: the workers failed (exit {code})")
        ranks = [json.loads((Path(tmp) / f"rank{r}-steps.json").read_text()) for r in range(workers)]
    return summarise(ranks, engine, workers, rate, delay, compression,
                     rate_bits(rate) if rate else None, load_before, time.monotonic() - start)


def summarise(ranks: list[dict[str, Any]], engine: str, workers: int, rate: str | None, delay: str | None,
              compression: str, rate_bits: float | None, load_before: tuple[float, ...],
              seconds: float) -> dict[str, Any]:
    """Medians over the timed steps (after ``WARMUP``) of the mean over ranks; a step is its slowest rank."""
    steps = range(WARMUP, len(ranks[0]["steps"]))
    per_step = [[r["steps"][k] for r in ranks] for k in steps]

    def median_mean(part: str) -> float:
        return statistics.median(statistics.fmean(s[part] for s in step) for step in per_step)

    step_s = statistics.median(max(s["compute_s"] + s["wait_s"] + s["allreduce_s"] for s in step)
                               for step in per_step)
    wire_bytes = ranks[0]["gradient_bytes"] / (2 if compression == "fp16" else 1)
    return {"engine": engine, "workers": workers, "rate": rate or "unlimited", "delay": delay or "none",
            "compression": compression, "hosts": [r["host"] for r in ranks],
            "gradient_bytes": ranks[0]["gradient_bytes"], "wire_bytes": wire_bytes,
            "step_s": step_s, "compute_s": median_mean("compute_s"), "wait_s": median_mean("wait_s"),
            "allreduce_s": median_mean("allreduce_s"), "users_per_s": BATCH / step_s,
            "ring_model_s": ring_seconds(workers, wire_bytes, rate_bits, delay_seconds(delay)),
            "timed_steps": len(per_step), "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()), "wall_s": seconds, "ranks": ranks}


def table(record: dict[str, Any]) -> str:
    lines = ["| engine | workers | link | compression | step s | compute s | wait s | all-reduce s | "
             "ring model s | users/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        model = "-" if r["ring_model_s"] is None else f"{r['ring_model_s']:.3f}"
        link = r["rate"] + ("" if r["delay"] == "none" else f", {r['delay']}")
        lines.append(f"| {r['engine']} | {r['workers']} | {link} | {r['compression']} | {r['step_s']:.3f} | "
                     f"{r['compute_s']:.3f} | {r['wait_s']:.3f} | {r['allreduce_s']:.3f} | {model} | "
                     f"{r['users_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


def chart(record: dict[str, Any], path: Path) -> None:
    """Seconds per step stacked (compute, wait, all-reduce) against the link, one panel per engine x workers;
    the ring model as a marker on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in record["rows"] if r["compression"] == "none"]
    panels = sorted({(r["engine"], r["workers"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, (engine, workers) in zip(axes[0], panels):
        mine = [r for r in rows if (r["engine"], r["workers"]) == (engine, workers)]
        labels = [r["rate"] + ("" if r["delay"] == "none" else f"\n{r['delay']}") for r in mine]
        x = range(len(mine))
        bottom = [0.0] * len(mine)
        for part, colour in (("compute_s", "#4c72b0"), ("wait_s", "#bbbbbb"), ("allreduce_s", "#dd8452")):
            values = [r[part] for r in mine]
            ax.bar(x, values, bottom=bottom, color=colour, label=part[:-2].replace("allreduce", "all-reduce"))
            bottom = [b + v for b, v in zip(bottom, values)]
        model = [(i, r["compute_s"] + r["wait_s"] + r["ring_model_s"]) for i, r in enumerate(mine)
                 if r["ring_model_s"] is not None]
        ax.plot([i for i, _ in model], [m for _, m in model], "k_", markersize=18, label="compute + wait + ring model")
        ax.set_xticks(list(x), labels)
        ax.set_title(f"{engine}, {workers} workers", fontsize=9)
        ax.set_xlabel("link rate per host")
    axes[0][0].set_ylabel("seconds per step")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Mult-VAE on ML-20M's shape, {record['rows'][0]['gradient_bytes'] / 1e6:.0f} MB of gradients, "
                 f"global batch {BATCH} ({record['machine']['machine_name']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.allreduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="2,4")
    p.add_argument("--rates", default="unlimited,10gbit,1gbit")
    p.add_argument("--delays", default="none", help="e.g. none,0.05ms,0.5ms (needs the kernel's sch_netem)")
    p.add_argument("--engines", default="horovod,tf-distribute")
    p.add_argument("--fp16-at", default="1gbit", help="rates at which compression=fp16 runs too ('' for none)")
    p.add_argument("--steps", type=int, default=6, help=f"timed steps per run (the first {WARMUP} left out)")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--out", type=Path, default=REPO / "results" / machine_name() / "allreduce.json")
    args = p.parse_args(argv)
    if args.steps <= WARMUP:
        p.error(f"--steps {args.steps}: more than the {WARMUP} warm-up steps")
    rates = [None if r == "unlimited" else r for r in args.rates.split(",")]
    delays = [None if d == "none" else d for d in args.delays.split(",")]
    fp16 = {r for r in args.fp16_at.split(",") if r}
    cases = [(engine, int(n), rate, delay, compression)
             for engine in args.engines.split(",") for n in args.workers.split(",")
             for rate in rates for delay in delays
             for compression in ("none", *(["fp16"] if rate in fp16 else []))]
    from tools.hosts import HostsError

    rows = []
    for engine, n, rate, delay, compression in cases:
        print(f"allreduce: {engine} x {n} at {rate or 'unlimited'}, delay {delay or 'none'}, {compression}",
              file=sys.stderr, flush=True)
        try:
            rows.append(run_case(engine, n, rate, delay, compression, args.steps, args.timeout))
        except (HostsError, RuntimeError) as e:
            print(f"allreduce: error: {e}", file=sys.stderr)
            return 2
    record = {"machine": header(), "batch_size": BATCH, "warmup_steps": WARMUP, "netem_available": netem_available(),
              "cores": os.cpu_count(), "model": "Mult-VAE [20108-600-200-600-20108], ML-20M's shape",
              "notes": ["one worker per namespace; every worker shares this machine's cores (one intra-op thread "
                        "each), so compute is oversubscribed beyond the core count: read the all-reduce column",
                        "wait_s: a one-number all-reduce before the gradients' one, i.e. the skew between workers",
                        "rates: tc tbf on each host's sending side; delays need sch_netem (netem_available)",
                        "the machine is shared with other work: load_average_before/after per row"],
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)
    args.out.with_suffix(".md").write_text(table(record))
    chart(record, args.out.with_suffix(".png"))
    print(table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
