"""One self-contained HTML page per run (``report.html``): a file to attach or send.

Everything a reader needs is in the one file, from the run's records alone: the charts (the
PNGs ``ablations.charts`` drew, inline as data URIs), the table (``report.to_markdown``'s, as
HTML), a verdict per step, what was substituted or skipped on this hardware, the machine, the
commit, and the commands that reproduce the run. The page loads nothing: no script, no
stylesheet, font or image from anywhere (``tests/ablations/test_page.py`` checks that in headless
Chromium). No TensorFlow, no matplotlib here.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ablations import verdicts
from ablations.ladder import BUDGETS
from ablations.quality import NOISE_SIGMAS
from vaecf.provenance import header_of

CHARTS = (("ladder", "Speed-up per step, and the quality each reached after the same time T"),
          ("quality_vs_time", "Validation NDCG@100 against training time, per step"),
          ("time_to_target", "Training seconds until the target NDCG@100, per step"))
"""The charts on the page, in order, each with its caption (files ``<name>.png`` of the run)."""

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1180px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f3f3f3; } td { vertical-align: top; } figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; } figcaption { color: #555; font-size: 13px; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; } .flag { color: #c0392b; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; } dt { font-weight: 600; }
"""


def render(run_dir: Path, derived: dict[str, Any], table: str) -> str:
    """The page's HTML for the run in ``run_dir`` (its charts already drawn), from ``report.derive`` and its
    Markdown table (``report.to_markdown``)."""
    run = derived["run"]
    machine = machine_of(run_dir, run)
    title = f"Ladder '{derived['ladder']}' ({run['budget']['name']} budget) on {machine}"
    head = '<meta charset="utf-8"><link rel="icon" href="data:,">'  # no favicon request either
    parts = [f"<!doctype html>\n<html lang=\"en\"><head>{head}<title>{_e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>", _summary(derived)]
    parts.append("<h2>Charts</h2>")
    for name, caption in CHARTS:
        png = run_dir / f"{name}.png"
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
                     f"<figcaption>{_e(caption)} ({name}.png)</figcaption></figure>")
    parts += ["<h2>Table</h2>", markdown_table(table), "<h2>Verdicts</h2>", _verdicts(derived),
              "<h2>Substitutions and skipped steps</h2>", _substitutions(derived), "<h2>Machine</h2>",
              _machine(machine, run), "<h2>How to reproduce</h2>", _reproduce(run_dir, run),
              "</body></html>\n"]
    return "\n".join(parts)


def _summary(d: dict[str, Any]) -> str:
    run = d["run"]
    baselines = ", ".join(f"{k} {v:.4f}" for k, v in d["baselines"].items())
    noise = f"{d['noise_sd']:.4f}" if d["noise_sd"] is not None else "unknown (one seed)"
    return (f"<p>{_e(run['ladder']['description'])}. Speed timed at {d['speed_items']:,} items; quality "
            f"trained on <code>{_e(run['budget']['quality_dataset'])}</code> ({run['data']['train_users']:,} "
            f"training users x {run['data']['items']:,} items). Every step trained for the same time "
            f"T = {d['budget_s']:.0f} s; target validation NDCG@100 {d['target']:.4f} "
            f"({d['target'] / d['converged']:.0%} of the calibration's converged {d['converged']:.4f}); "
            f"seed noise (sd) {noise}; {_e(baselines)}.</p>")


def _verdicts(d: dict[str, Any]) -> str:
    """One sentence per step: its speed factor and whether it is real, its quality at T, its time to target;
    then its verdicts against the step before and the first (``ablations.verdicts``)."""
    loo = d["mode"] == "leave-one-out"
    items = []
    for r in d["rows"]:
        if r["status"] != "done":
            items.append(f"<li><b>{_e(r['name'])}</b>: skipped ({_e(r['skip'])}).</li>")
            continue
        factor = (f"the fastest configuration is {r['first_over_this']:.2f}x this one" if loo
                  else f"{r['step_factor']:.2f}x the step before, {r['total_factor']:.2f}x the first")
        spread = " (not distinguishable: not a measured difference)" if r["within_spread"] else ""
        if r["flagged"]:
            quality = (f'<span class="flag">NDCG@100 at T {r["ndcg_at_budget"]:.4f}, below the first step by '
                       f"{-r['ndcg_vs_first']:.4f}: more than {NOISE_SIGMAS:g} seed deviations</span>")
        else:
            quality = f"NDCG@100 at T {r['ndcg_at_budget']:.4f} ({r['ndcg_vs_first']:+.4f}, within noise or above)"
        ttt = (f"target reached at {verdicts.seconds(r['time_to_target_s'], r['time_to_target_interval'])}"
               if r["time_to_target_s"] is not None else f"target not reached within T = {d['budget_s']:.0f} s")
        said = "".join(f"<br>{_e(verdicts.sentence(c))}" for row, c in verdicts.comparisons(d) if row is r)
        items.append(f"<li><b>{_e(r['name'])}</b>: {factor}{spread}; {quality}; {ttt}.{said}</li>")
    return "<ul>" + "\n".join(items) + "</ul>"


def _substitutions(d: dict[str, Any]) -> str:
    items = [f"<li><b>{_e(r['name'])}</b>: {_e(note)}</li>" for r in d["rows"] for note in r["notes"]]
    items += [f"<li><b>{_e(r['name'])}</b>: skipped: {_e(r['skip'])}</li>" for r in d["rows"] if r["skip"]]
    return "<ul>" + "\n".join(items) + "</ul>" if items else "<p>None: every step ran as its ladder says.</p>"


def _machine(name: str, run: dict[str, Any]) -> str:
    m = run["machine"]
    facts = {"machine": name, "CPU": f"{m['cpu']}, {m['cores']} cores",
             "CPU flags": ", ".join(m.get("cpu_flags", [])) or "none of AVX-512/AMX",
             "GPUs": ", ".join(m["gpus"]) or "none",
             "CUDA / cuDNN (of the TensorFlow build)": f"{m['cuda']} / {m['cudnn']}",
             "Python": m["python"], "libraries": ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             "commit": m["git_sha"], "started": run["started"]}
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(str(v))}</dd>" for k, v in facts.items()) + "</dl>"


def machine_of(run_dir: Path, run: dict[str, Any]) -> str:
    """The machine the run names in its record; for runs made before the header named it, the folder above
    the run's (``results/<machine>/<run>``). Not the folder alone: a run made with ``--out`` elsewhere
    and moved into ``results/`` would be called after wherever it was made."""
    return header_of(run).get("machine_name") or run_dir.parent.name


def reproduce_command(run_dir: Path, run: dict[str, Any]) -> str:
    """The command that makes this run again (on the machine it names), at the commit it records."""
    budget = run["budget"]
    dataset = budget["quality_dataset"]
    extra = f" --dataset {dataset}" if dataset != BUDGETS[budget["name"]].quality_dataset else ""
    return (f"git checkout {str(run['machine']['git_sha'])[:12]}\n"
            f"VAECF_MACHINE={machine_of(run_dir, run)} python -m ablations run --ladder {run['ladder']['name']} "
            f"--budget {budget['name']}{extra}\n"
            f"python -m ablations report {run_dir}   # this page, from the records alone")


def _reproduce(run_dir: Path, run: dict[str, Any]) -> str:
    ref = run["calibration"]
    where = f"<code>{_e(ref)}</code> (relative to the run folder)" if isinstance(ref, str) else \
        f"<code>results/{_e(ref['path'])}</code> (sha256 of its contents {_e(ref['sha256'])})"
    return (f"<pre>{_e(reproduce_command(run_dir, run))}</pre><p>The calibration of the quality data is read from "
            f"{where} or made when missing.</p>")


def markdown_table(markdown: str) -> str:
    """Markdown pipe tables and the paragraphs between them as HTML: the tables the README shows, in the page."""
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    out = []
    for block in markdown.strip().split("\n\n"):
        lines = block.strip().splitlines()
        rows = [ln for ln in lines if ln.startswith("|") and not set(ln) <= set("|-")]
        if rows:
            head = "".join(f"<th>{_e(c)}</th>" for c in cells(rows[0]))
            body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells(r)) + "</tr>\n" for r in rows[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>")
        out += [f"<p>{_e(ln)}</p>" for ln in lines if ln and not ln.startswith("|")]
    return "".join(out)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
