"""Projections: a ladder's steps through ``vaecf.costmodel`` onto described hardware, and the held-out check.

``python -m ablations project RUN --onto v100x4`` predicts every step of a run on the named
hardware (``ablations/hardware/<key>.toml`` times a GPU count, or ``here``: this machine from the
probe) with the host's share from the run's probe (``rates.json``, ``ablations.rates``), and
writes ``projection-<onto>.{md,json}`` and a chart beside the run's own tables; ``--onto here``
is the CPU check, every step's residual against its measured speed. ``python -m ablations
project --ladder case-study --onto v100x4 --probe RATES`` projects a ladder definition with no
run (the full budget's shapes) into ``results/projection/<ladder>-<onto>.*``. ``python -m
ablations heldout`` predicts NVIDIA's published VAE-CF throughputs and the talk's step factors,
which the model was never fitted to, and writes ``results/projection/heldout.{json,md}``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ablations.ladder import BUDGETS, Ladder, Step, resolve
from ablations.ladder import Hardware as LadderHardware
from ablations.rates import needs, uncovered
from ablations.speed import speed_summary
from vaecf.config import TrainConfig
from vaecf.costmodel import (
    Hardware,
    HostCost,
    Prediction,
    StepShape,
    cpu_hardware,
    gpu_hardware,
    load_device,
    predict,
    sourced,
)
from vaecf.data.registry import ML20M
from vaecf.errors import VaecfError
from vaecf.integrity import read_record
from vaecf.io import atomic_write, read_json
from vaecf.provenance import git_sha, header_of

HARDWARE = Path(__file__).resolve().parent / "hardware"
REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
PROJECTIONS = Path("results") / "projection"
"""Where projections of a ladder with no run go (``--ladder``), beside the held-out check."""
ML20M_ITEMS = BUDGETS["full"].speed_items
GROUPS = {"GEMMs": ("gemm",), "elementwise passes": ("elementwise", "first_layer", "adam"),
          "host": ("host", "overhead", "transfer"), "all-reduce": ("allreduce",)}
"""How a chart stacks the model's parts."""


def known_hardware() -> list[str]:
    names = []
    for path in sorted(HARDWARE.glob("*.toml")):
        device = load_device(path)
        names += [f"{device['key']}x{n}" for n in device["counts"]]
    return [*names, "here"]


def hardware(name: str, rates: dict[str, Any] | None, workers: int = 1) -> Hardware:
    """A hardware name (``v100x4``, ``a100x8``, ``h100x1``, ``here``) as a description; one line if unknown.

    ``here``: this machine from the probe, at the rates of a world of ``workers`` workers.
    """
    if name == "here":
        if rates is None:
            raise VaecfError("--onto here needs a probe of this machine (rates.json); make one with "
                             "python -m ablations rates RUN")
        return cpu_hardware(rates, f"here ({header_of(rates)['machine_name']})", workers)
    match = re.fullmatch(r"([a-z0-9]+)x(\d+)", name)
    path = HARDWARE / f"{match[1]}.toml" if match else None
    if path is None or not path.is_file() or int(match[2]) not in load_device(path)["counts"]:  # type: ignore[index]
        raise VaecfError(f"--onto {name!r}: unknown hardware; known: {', '.join(known_hardware())} "
                         f"(descriptions in {HARDWARE})")
    return gpu_hardware(load_device(path), int(match[2]))  # type: ignore[index]


def host_cost(rates: dict[str, Any], train: TrainConfig, where: str) -> HostCost:
    """The probe's host figures for a step's input kind at its per-worker batch."""
    key = f"{train.input},{train.global_batch // train.workers}"
    if key not in rates["host_prep_s"]:
        raise VaecfError(f"{where}: the probe has no host figure for {key!r} (it has "
                         f"{', '.join(sorted(rates['host_prep_s']))}); rerun python -m ablations rates")
    return HostCost(rates["host_prep_s"][key], rates["overhead_s"])


def on_gpu(train: TrainConfig, hw: Hardware) -> tuple[TrainConfig, str | None]:
    """A CPU run's bfloat16 substitute back to float16 where the GPU has no bfloat16 rate."""
    if hw.kind == "gpu" and train.precision not in hw.gemm_flops and train.precision == "mixed_bfloat16":
        return train.with_overrides(precision="mixed_float16"), "bfloat16 projected as float16"
    return train, None


def read_probe(path: Path, fix: str) -> dict[str, Any]:
    if not path.is_file():
        raise VaecfError(f"{path}: no probe (no such file); make one with {fix}")
    return read_record(path, f"rerun {fix}")


def project_run(run_dir: Path, onto: str, rates_path: Path | None = None) -> dict[str, Any]:
    """Every step of a run: measured users/s beside the projection onto ``onto``, part by part.

    ``onto = "here"`` is the CPU check: the run's own machine, every rate from the probe.
    """
    if not (run_dir / "run.json").is_file():
        raise VaecfError(f"{run_dir}: not a ladder run folder (no run.json)")
    rates_path = rates_path or run_dir / "rates.json"
    if not rates_path.is_file():
        raise VaecfError(f"{run_dir}: no probe ({rates_path} is missing); make one with "
                         f"python -m ablations rates {run_dir}")
    rates = read_record(rates_path, f"rerun python -m ablations rates {run_dir}")
    run = read_record(run_dir / "run.json", "the run folder is damaged")
    speed = read_record(run_dir / "speed.json", "the run folder is damaged")
    hw = hardware(onto, rates)
    steps = [Step(s["index"], s["name"], "", TrainConfig(**s["train"]), skip=s["skip"]) for s in run["steps"]]
    if onto == "here":
        probe_cpu = {k: header_of(rates).get(k) for k in ("cpu", "cpu_flags", "cores")}
        run_cpu = {k: run["machine"].get(k) for k in probe_cpu}
        if probe_cpu != run_cpu:
            raise VaecfError(f"--onto here: the probe was made on {probe_cpu}, the run on {run_cpu}; "
                             f"probe the run's own machine (python -m ablations rates {run_dir})")
        if lacking := uncovered(rates, needs([s.train for s in steps if s.skip is None])):
            raise VaecfError(f"--onto here: the probe {rates_path} has no figure for {', '.join(lacking)}; "
                             f"rerun python -m ablations rates {run_dir}")
    measured = {s.index: speed_summary(speed, s)["users_per_s"] for s in steps if s.skip is None}
    rows = _rows(steps, onto, hw, rates, str(rates_path), speed["workload"]["items"],
                 speed["workload"]["mean_items"], measured)
    talk = read_json(REFERENCE / "case-study-ladder.json") if run["ladder"].get("reference") == "case-study" else None
    published = {t["name"]: t["cumulative_speedup"] for t in talk["steps"]} if talk else {}
    return {"run": str(run_dir), "ladder": run["ladder"]["name"], "onto": onto, "hardware": hw.name,
            "specs_only": hw.specs_only, "probe": str(rates_path), "probe_machine": header_of(rates)["machine_name"],
            "run_machine": run_dir.resolve().parent.name,
            "published": [published.get(r["name"]) for r in rows] if talk else None, "rows": rows}


def project_ladder(name: str, onto: str, rates_path: Path) -> dict[str, Any]:
    """A ladder definition's steps at the full budget (ML-20M's shape, batches as published) projected onto
    ``onto``, with no run: host figures from a probe of this machine, beside the published ladder if the
    ladder is a published one (step by step, in order)."""
    ladder = Ladder.load(name)
    if ladder.mode != "ladder":
        raise VaecfError(f"--ladder {name}: a {ladder.mode} ladder has no fixed steps to project")
    rates = read_probe(rates_path, "python -m ablations rates")
    hw = hardware(onto, rates)
    cores = int(header_of(rates).get("cores") or 1)
    at = LadderHardware(gpus=hw.devices, cores=cores, horovod=True) if hw.kind == "gpu" else \
        LadderHardware(gpus=0, cores=cores, horovod=False)
    steps = resolve(ladder, at, BUDGETS["full"], ML20M.train_users)
    rows = _rows(steps, onto, hw, rates, str(rates_path), ML20M_ITEMS, ML20M.mean_items, None)
    talk = read_json(REFERENCE / f"{ladder.reference}-ladder.json") if ladder.reference == ladder.name else None
    published = [1.0, *(t["cumulative_speedup"] for t in talk["steps"])] if talk else None
    return {"run": None, "ladder": ladder.name, "onto": onto, "hardware": hw.name, "specs_only": hw.specs_only,
            "probe": str(rates_path), "probe_machine": header_of(rates)["machine_name"], "run_machine": None,
            "published": [published[i] if i < len(published) else None for i in range(len(rows))]
            if published else None, "rows": rows}


def _rows(steps: list[Step], onto: str, hw: Hardware, rates: dict[str, Any], where: str, items: int,
          mean_items: float, measured: dict[int, float] | None) -> list[dict[str, Any]]:
    """One row per step: measured (a run's) and projected users/s, each part's seconds, notes."""
    rows = []
    for step in steps:
        row: dict[str, Any] = {"name": step.name, "skip": step.skip, "note": None}
        if measured is not None and step.skip is None:
            row["measured_users_per_s"] = measured[step.index]
        train, row["note"] = on_gpu(step.train, hw)
        if step.skip is None and hw.kind == "gpu" and train.workers > hw.devices:
            row["skip"] = f"needs {train.workers} GPUs"
        if row["skip"] is None:
            at = hardware(onto, rates, train.workers) if hw.kind == "cpu" else hw
            shape = StepShape.of(train, items, mean_items)
            row.update(_prediction(predict(shape, at, host_cost(rates, train, where)), shape))
            if hw.kind == "cpu":
                row["note"] = "; ".join(n for n in (
                    _world_note(rates, train.workers) if train.workers > 1 else None,
                    "XLA's GEMM rate; fusion not modelled" if train.xla else None) if n) or None
        rows.append(row)
    return rows


def _world_note(rates: dict[str, Any], workers: int) -> str:
    """Which rates a data-parallel CPU step took, and how loaded the machine was when they were measured."""
    load = rates["worlds"][str(workers)].get("load_average")
    return f"rates of a world of {workers} workers" + (f" (probed at load {load[0]:.1f})" if load else "")


def _prediction(p: Prediction, shape: StepShape) -> dict[str, Any]:
    return {"projected_users_per_s": p.users_per_s, "projected_s": p.seconds,
            "parts_s": p.parts, "visible_s": p.visible, "global_batch": shape.batch * shape.workers,
            "bound": _bound(p)}


PROJECTED = ("v100x4", "a100x8", "h100x1")
"""The machines a finished ladder run is projected onto in one line each (``python -m ablations run``)."""


def summary_line(proj: dict[str, Any]) -> str:
    """One line: the projected ladder's first and last step and what bounds the last."""
    rows = [r for r in proj["rows"] if "projected_users_per_s" in r]
    if not rows:
        return f"projected onto {proj['hardware']}: no step fits ({proj['rows'][0]['skip']})"
    first, last = rows[0], rows[-1]
    groups = {g: sum(last["visible_s"][k] for k in keys) for g, keys in GROUPS.items()}
    return (f"projected onto {proj['hardware']}{' (specs only)' if proj['specs_only'] else ''}: "
            f"{first['name']} {first['projected_users_per_s']:,.0f} -> {last['name']} "
            f"{last['projected_users_per_s']:,.0f} users/s "
            f"({last['projected_users_per_s'] / first['projected_users_per_s']:.1f}x), "
            f"the last bound by {max(groups, key=lambda g: groups[g])}")


# -- the held-out check ---------------------------------------------------------------------------

def heldout(rates: dict[str, Any], rates_path: str) -> dict[str, Any]:
    """NVIDIA's eight published throughputs and the talk's four step factors, predicted with residuals."""
    nvidia = read_json(REFERENCE / "nvidia-vae-cf.json")
    rows = []
    for r in nvidia["training"]:
        key = "v100" if "V100" in r["hardware"] else "a100"
        hw = hardware(f"{key}x{r['gpus']}", rates)
        train = TrainConfig(batch_size=r["batch_per_gpu"], input="sparse", pipeline="tfdata",
                            precision="float32" if r["precision"] in ("fp32", "tf32") else "mixed_float16",
                            workers=r["gpus"], batch_scope="worker")
        shape = StepShape.of(train, ML20M_ITEMS, ML20M.mean_items)
        p = predict(shape, hw, host_cost(rates, train, rates_path))
        rows.append({"hardware": hw.name, "gpus": r["gpus"], "precision": r["precision"],
                     "batch_per_gpu": r["batch_per_gpu"], "published_users_per_s": r["users_per_s"],
                     "predicted_users_per_s": p.users_per_s, "residual": p.users_per_s / r["users_per_s"] - 1,
                     "bound": _bound(p), "parts_s": p.parts})
    talk = read_json(REFERENCE / "case-study-ladder.json")
    steps = resolve(Ladder.load("case-study"), LadderHardware(gpus=4, cores=20, horovod=True), BUDGETS["full"],
                    ML20M.train_users)
    hw = hardware("v100x4", rates)
    predicted = []
    for step in steps:
        shape = StepShape.of(step.train, ML20M_ITEMS, ML20M.mean_items)
        predicted.append(predict(shape, hw, host_cost(rates, step.train, rates_path)))
    factors = []
    for published, before, after in zip(talk["steps"], predicted, predicted[1:]):
        factor = after.users_per_s / before.users_per_s
        factors.append({"step": published["name"], "published": published["step_speedup"], "predicted": factor,
                        "residual": factor / published["step_speedup"] - 1, "bound": _bound(after),
                        "parts_s": after.parts})
    devices = {p.stem: {k: e for k, e in sourced(load_device(p))} for p in sorted(HARDWARE.glob("*.toml"))}
    return {"made_at": git_sha(), "probe": rates_path, "probe_machine": header_of(rates)["machine_name"],
            "host_prep_s": rates["host_prep_s"], "overhead_s": rates["overhead_s"],
            "workload": {"items": ML20M_ITEMS, "mean_items": ML20M.mean_items},
            "nvidia": rows, "talk": factors, "parameters": devices,
            "how": "python -m ablations heldout --probe " + rates_path}


def _bound(p: Prediction) -> str:
    """Which part sets the step's time: the largest visible group."""
    groups = {g: sum(p.visible[k] for k in keys) for g, keys in GROUPS.items()}
    return max(groups, key=lambda g: groups[g])


def heldout_table(record: dict[str, Any]) -> str:
    lines = ["| hardware | GPUs | precision | batch/GPU | published users/s | predicted | residual | bound by |",
             "|---|---|---|---|---|---|---|---|"]
    for r in record["nvidia"]:
        lines.append(f"| {r['hardware']} | {r['gpus']} | {r['precision']} | {r['batch_per_gpu']:,} | "
                     f"{r['published_users_per_s']:,.0f} | {r['predicted_users_per_s']:,.0f} | "
                     f"{r['residual']:+.0%} | {r['bound']} |")
    lines += ["", "| the talk's step (4x V100) | published factor | predicted | residual | bound by |",
              "|---|---|---|---|---|"]
    for f in record["talk"]:
        lines.append(f"| {f['step']} | {f['published']:.1f}x | {f['predicted']:.2f}x | {f['residual']:+.0%} | "
                     f"{f['bound']} |")
    lines += ["", f"Predicted by `vaecf.costmodel` from the data-sheet peaks and fractions in "
              f"`ablations/hardware/*.toml` (specs only: no rate measured on a GPU), with the host's batch "
              f"preparation and per-step overhead probed on {record['probe_machine']} ({record['probe']}); "
              f"made at {record['made_at'][:10]} by `{record['how']}`. Residual = predicted / published - 1."]
    return "\n".join(lines) + "\n"


CHECK_GOAL = 0.25
"""The CPU check's goal: every step predicted within +-25% of its measured speed (issue #17)."""


def projection_table(proj: dict[str, Any]) -> str:
    """The projection as Markdown: a run's measured speed beside it (with the residual on its own machine)."""
    label = f"projected onto {proj['hardware']}" + (" (specs only)" if proj["specs_only"] else "")
    has_run = proj["run"] is not None
    check = proj["onto"] == "here" and has_run  # the CPU check: the same machine, so a residual
    head = ["step"] + ([f"measured users/s ({proj['run_machine']})"] if has_run else []) + [f"{label}: users/s"] \
        + (["residual"] if check else []) + [f"{g} (ms/update)" for g in GROUPS] + ["bound by", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in proj["rows"]:
        cells = [r["name"]]
        if has_run:
            cells.append(f"{r['measured_users_per_s']:,.0f}" if "measured_users_per_s" in r else "-")
        if "projected_users_per_s" not in r:
            lines.append("| " + " | ".join(cells + ["-"] * (len(head) - len(cells) - 1) + [r["skip"]]) + " |")
            continue
        cells.append(f"{r['projected_users_per_s']:,.0f}")
        notes = [r["note"]] if r["note"] else []
        if check:
            residual = r["projected_users_per_s"] / r["measured_users_per_s"] - 1
            cells.append(f"{residual:+.0%}")
            if abs(residual) > CHECK_GOAL:
                notes.append(f"outside +-{CHECK_GOAL:.0%}")
        cells += [f"{sum(r['visible_s'][k] for k in keys) * 1e3:.2f}" for keys in GROUPS.values()]
        lines.append("| " + " | ".join(cells + [r["bound"], "; ".join(notes)]) + " |")
    source = f"the run's steps ({proj['run']})" if has_run else \
        f"the {proj['ladder']} ladder's steps at the full budget (ML-20M's shape, batches as published; no run)"
    lines += ["", f"Projected: `vaecf.costmodel` on `{proj['onto']}` for {source}, host figures from the probe "
              f"made on {proj['probe_machine']} ({proj['probe']}). The parts are those on the step's critical path "
              "(prefetch hides the shorter of host and device)."
              + (" Residual = projected / measured - 1." if check else "")]
    return "\n".join(lines) + "\n"


def write_projection(stem: Path, proj: dict[str, Any]) -> list[Path]:
    """``stem``.md, the record ``stem``.json (the provenance header under ``machine``) and the chart (png, svg)."""
    from vaecf.io import write_json
    from vaecf.provenance import header

    md = stem.with_suffix(".md")
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(md, lambda tmp: tmp.write_text(projection_table(proj)))
    write_json(stem.with_suffix(".json"), {"machine": header(), **proj})
    return [md, stem.with_suffix(".json"), *_chart(proj, stem)]


def _chart(proj: dict[str, Any], stem: Path) -> list[Path]:
    """Left: the projected seconds per update, part by part; right: speed-up over the first step,
    measured (a run's), projected and (where the ladder is the talk's) published."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "vaecf"  # byte-stable SVGs, as ablations.charts
    kept = [i for i, r in enumerate(proj["rows"]) if "projected_users_per_s" in r]
    rows = [proj["rows"][i] for i in kept]
    names = [r["name"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.8))
    bottom = [0.0] * len(rows)
    for (group, keys), colour in zip(GROUPS.items(), ("#3b75af", "#e39c3b", "#8c8c8c", "#2e8b57")):
        # per 1,000 users, so that steps with different batches compare
        ms = [sum(r["visible_s"][k] for k in keys) * 1e6 / r["global_batch"] for r in rows]
        left.barh(names, ms, left=bottom, color=colour, label=group)
        bottom = [b + m for b, m in zip(bottom, ms)]
    left.invert_yaxis()
    left.set_xlabel("projected ms per 1,000 users (the update's critical path)")
    left.set_title(f"PROJECTED onto {proj['hardware']}", fontsize=10)
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4)
    first_p = rows[0]["projected_users_per_s"]
    series = []
    if proj["run"] is not None:
        first_m = rows[0]["measured_users_per_s"]
        series.append(("measured (" + proj["run_machine"] + ")",
                       [r["measured_users_per_s"] / first_m for r in rows], "#3b75af"))
    series.append(("PROJECTED " + proj["onto"], [r["projected_users_per_s"] / first_p for r in rows], "#e39c3b"))
    if proj["published"]:
        published = [proj["published"][i] for i in kept]
        series.append(("published (the talk, 4x V100)", [math.nan if p is None else p if i else 1.0
                                                         for i, p in enumerate(published)], "#bbbbbb"))
    height = 0.8 / len(series)
    for k, (label, values, colour) in enumerate(series):
        right.barh([i + k * height for i in range(len(rows))], values, height, color=colour, label=label)
    right.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(rows))], names)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("speed-up over the first step (x, log)")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    what = (f"{Path(proj['run']).name}: measured ladder and its projection" if proj["run"] is not None else
            f"the {proj['ladder']} ladder (full budget, no run) PROJECTED")
    fig.suptitle(f"{what} (host from the probe on {proj['probe_machine']})", fontsize=10)
    fig.tight_layout()
    paths = []
    for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
        paths.append(stem.with_suffix(f".{ext}"))
        fig.savefig(paths[-1], dpi=110, metadata=metadata)
    plt.close(fig)
    return paths


# -- the command line -----------------------------------------------------------------------------

def command(args: Any) -> None:
    """``python -m ablations rates | project | heldout`` (parsed in ``ablations.__main__``)."""
    from ablations.rates import ensure
    from vaecf.io import write_json
    from vaecf.provenance import header, machine_name

    if args.command == "rates":
        if args.run is not None:
            if not (args.run / "run.json").is_file():
                raise VaecfError(f"{args.run}: not a ladder run folder (no run.json)")
            run = read_record(args.run / "run.json", "the run folder is damaged")
            trains = [TrainConfig(**s["train"]) for s in run["steps"] if not s["skip"]]
            out = args.out or args.run / "rates.json"
        else:
            trains = heldout_trains()
            out = args.out or Path("results") / machine_name() / "rates-heldout.json"
        ensure(out, trains, ML20M_ITEMS, print, gemm=args.run is not None)
        print(f"probe: {out}")
    elif args.command == "project":
        if (args.run is None) == (args.ladder is None):
            raise VaecfError("project: name a run folder, or --ladder NAME --probe RATES (a ladder with no run), "
                             "not both")
        if args.ladder is not None and args.probe is None:
            raise VaecfError(f"--ladder {args.ladder}: a ladder with no run has no probe of its own; name one with "
                             "--probe (e.g. results/cpu2-xeon-amx/rates-heldout.json; python -m ablations rates)")
        if args.onto != "here":
            hardware(args.onto, None)  # an unknown name fails before anything is read
        if args.run is not None:
            proj = project_run(args.run, args.onto, args.probe)
            stem = args.run / f"projection-{args.onto}"
        else:
            proj = project_ladder(args.ladder, args.onto, args.probe)
            stem = args.out or PROJECTIONS / f"{proj['ladder']}-{args.onto}"
        for path in write_projection(stem, proj):
            print(f"wrote {path}")
        print(projection_table(proj))
    else:
        if not args.probe.is_file():
            raise VaecfError(f"--probe {args.probe}: no such file; make one with python -m ablations rates")
        rates = read_record(args.probe, "rerun python -m ablations rates")
        record = heldout(rates, str(args.probe))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out.with_suffix(".json"), {"machine": header(), **record})
        table = heldout_table(record)
        atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(table))
        print(table)


def heldout_trains() -> list[TrainConfig]:
    """The configurations the held-out check predicts: NVIDIA's rows and the talk's ladder on 4 GPUs."""
    nvidia = read_json(REFERENCE / "nvidia-vae-cf.json")
    trains = [TrainConfig(batch_size=r["batch_per_gpu"], input="sparse", pipeline="tfdata",
                          workers=r["gpus"], batch_scope="worker") for r in nvidia["training"]]
    steps = resolve(Ladder.load("case-study"), LadderHardware(gpus=4, cores=20, horovod=True), BUDGETS["full"],
                    ML20M.train_users)
    return trains + [s.train for s in steps]
