"""Projections: a ladder's steps through ``vaecf.costmodel`` onto described hardware, and the held-out check.

``python -m ablations project RUN --onto v100x4`` predicts every step of a run on the named
hardware (``ablations/hardware/<key>.toml`` times a GPU count, or ``here``: this machine from the
probe) with the host's share from the run's probe (``rates.json``, ``ablations.rates``), and
writes ``projection-<onto>.md`` and a chart beside the run's own tables. ``python -m ablations
heldout`` predicts NVIDIA's published VAE-CF throughputs and the talk's step factors, which the
model was never fitted to, and writes ``results/reference/costmodel-heldout.{json,md}``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ablations.ladder import BUDGETS, Ladder, resolve
from ablations.ladder import Hardware as LadderHardware
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
from vaecf.provenance import git_sha

HARDWARE = Path(__file__).resolve().parent / "hardware"
REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
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


def hardware(name: str, rates: dict[str, Any] | None) -> Hardware:
    """A hardware name (``v100x4``, ``a100x8``, ``h100x1``, ``here``) as a description; one line if unknown."""
    if name == "here":
        if rates is None:
            raise VaecfError("--onto here needs a probe of this machine (rates.json); make one with "
                             "python -m ablations rates RUN")
        return cpu_hardware(rates, f"here ({rates['machine']})")
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


def project_run(run_dir: Path, onto: str, rates_path: Path | None = None) -> dict[str, Any]:
    """Every step of a run: measured users/s beside the projection onto ``onto``, part by part."""
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
    probe_cpu = {k: rates.get("provenance", {}).get(k) for k in ("cpu", "cpu_flags", "cores")}
    run_cpu = {k: run["machine"].get(k) for k in probe_cpu}
    if onto == "here" and probe_cpu != run_cpu:
        raise VaecfError(f"--onto here: the probe was made on {probe_cpu}, the run on {run_cpu}; "
                         f"probe the run's own machine (python -m ablations rates {run_dir})")
    rows = []
    for s in run["steps"]:
        row: dict[str, Any] = {"name": s["name"], "skip": s["skip"], "note": None}
        if s["skip"]:
            rows.append(row)
            continue
        from ablations.ladder import Step

        train = TrainConfig(**s["train"])
        row["measured_users_per_s"] = speed_summary(speed, Step(s["index"], s["name"], "", train))["users_per_s"]
        train, row["note"] = on_gpu(train, hw)
        if hw.kind == "gpu" and train.workers > hw.devices:
            row["skip"] = f"needs {train.workers} GPUs"
        else:
            shape = StepShape.of(train, speed["workload"]["items"], speed["workload"]["mean_items"])
            row.update(_prediction(predict(shape, hw, host_cost(rates, train, str(rates_path))), shape))
        rows.append(row)
    return {"run": str(run_dir), "onto": onto, "hardware": hw.name, "specs_only": hw.specs_only,
            "probe": str(rates_path), "probe_machine": rates["machine"], "run_machine": run_dir.resolve().parent.name,
            "reference": run["ladder"].get("reference"), "rows": rows}


def _prediction(p: Prediction, shape: StepShape) -> dict[str, Any]:
    return {"projected_users_per_s": p.users_per_s, "projected_s": p.seconds,
            "parts_s": p.parts, "visible_s": p.visible, "global_batch": shape.batch * shape.workers}


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
    return {"made_at": git_sha(), "probe": rates_path, "probe_machine": rates["machine"],
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


def projection_table(proj: dict[str, Any]) -> str:
    label = f"projected onto {proj['hardware']}" + (" (specs only)" if proj["specs_only"] else "")
    check = proj["onto"] == "here"  # the CPU check: the same machine, so a residual
    lines = [f"| step | measured users/s ({proj['run_machine']}) | {label}: users/s | "
             + ("residual | " if check else "") + " | ".join(f"{g} (ms/update)" for g in GROUPS)
             + " | bound by | notes |",
             "|---|---|---|" + "---|" * (len(GROUPS) + check) + "---|---|"]
    for r in proj["rows"]:
        measured = f"{r['measured_users_per_s']:,.0f}" if "measured_users_per_s" in r else "-"
        if "projected_users_per_s" not in r:
            lines.append(f"| {r['name']} | {measured} | - |" + " - |" * (len(GROUPS) + check) + f" - | {r['skip']} |")
            continue
        groups = [sum(r["visible_s"][k] for k in keys) * 1e3 for keys in GROUPS.values()]
        bound = list(GROUPS)[groups.index(max(groups))]
        residual = f"{r['projected_users_per_s'] / r['measured_users_per_s'] - 1:+.0%} | " if check else ""
        lines.append(f"| {r['name']} | {measured} | {r['projected_users_per_s']:,.0f} | {residual}"
                     + " | ".join(f"{g:.2f}" for g in groups) + f" | {bound} | {r['note'] or ''} |")
    lines += ["", f"Projected: `vaecf.costmodel` on `{proj['onto']}`, host figures from the probe made on "
              f"{proj['probe_machine']} ({proj['probe']}). The parts are those on the step's critical path "
              "(prefetch hides the shorter of host and device)."]
    return "\n".join(lines) + "\n"


def write_projection(run_dir: Path, proj: dict[str, Any]) -> list[Path]:
    """``projection-<onto>.md`` and its chart (png, svg) in the run folder."""
    md = run_dir / f"projection-{proj['onto']}.md"
    atomic_write(md, lambda tmp: tmp.write_text(projection_table(proj)))
    talk = read_json(REFERENCE / "case-study-ladder.json") if proj["reference"] == "case-study" else None
    return [md, *_chart(proj, talk, run_dir / f"projection-{proj['onto']}")]


def _chart(proj: dict[str, Any], talk: dict[str, Any] | None, stem: Path) -> list[Path]:
    """Left: the projected seconds per update, part by part; right: speed-up over the first step,
    measured, projected and (where the ladder is the talk's) published."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "vaecf"  # byte-stable SVGs, as ablations.charts
    rows = [r for r in proj["rows"] if "projected_users_per_s" in r]
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
    first_m, first_p = rows[0]["measured_users_per_s"], rows[0]["projected_users_per_s"]
    series = [("measured (" + proj["run_machine"] + ")", [r["measured_users_per_s"] / first_m for r in rows],
               "#3b75af"),
              ("PROJECTED " + proj["onto"], [r["projected_users_per_s"] / first_p for r in rows], "#e39c3b")]
    if talk:
        published = {s["name"]: s["cumulative_speedup"] for s in talk["steps"]}
        series.append(("published (the talk, 4x V100)", [published.get(n, math.nan) if i else 1.0
                                                          for i, n in enumerate(names)], "#bbbbbb"))
    height = 0.8 / len(series)
    for k, (label, values, colour) in enumerate(series):
        right.barh([i + k * height for i in range(len(rows))], values, height, color=colour, label=label)
    right.set_yticks([i + height for i in range(len(rows))], names)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("speed-up over the first step (x, log)")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    fig.suptitle(f"{Path(proj['run']).name}: measured ladder and its projection (host from the probe on "
                 f"{proj['probe_machine']})", fontsize=10)
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
    from vaecf.provenance import machine_name

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
        if args.onto != "here":
            hardware(args.onto, None)  # an unknown name fails before anything is read
        proj = project_run(args.run, args.onto, args.probe)
        for path in write_projection(args.run, proj):
            print(f"wrote {path}")
        print(projection_table(proj))
    else:
        if not args.probe.is_file():
            raise VaecfError(f"--probe {args.probe}: no such file; make one with python -m ablations rates")
        rates = read_record(args.probe, "rerun python -m ablations rates")
        record = heldout(rates, str(args.probe))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out.with_suffix(".json"), record)
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
