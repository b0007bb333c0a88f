"""Intervals, break-even ratios and verdicts of a ladder run, from its records alone.

Every figure a verdict rests on is an estimate with a 95% interval, on the log scale (speeds,
factors and times are ratios):

- **Speed.** The timing windows are the independent unit (each is its own process, in its own
  round); a window that stayed disturbed is set aside (``disturbance.quiet``: every figure rests
  on a configuration's undisturbed windows while it has two). A step's users/s is the median of
  its windows' medians; its interval is that median
  x exp(+-t x the standard error of the mean log window rate), t with windows - 1 degrees of
  freedom. A factor between two steps is the ratio of their medians, its interval from the
  per-round ratios (both steps timed in the same round share that round's machine state, so the
  pairing removes drift between rounds); the same speed configuration is one measurement: 1 exactly.
  Intervals are centred on the figure the table reports (the median), so they always hold it.
- **Users to target.** Each maths configuration's quality curve is trained with >= 2 seeds; the
  target is crossed where the seed-mean curve reaches it, linearly interpolated between the two
  validations around it (the first validation at or above would quantise every figure to T/20).
  The seeds' spread, as the standard deviation of log users to target around each configuration's
  mean, is pooled over the run's configurations (the same model and data; a few seeds each would
  give nearly no degrees of freedom alone; df = the sum of seeds - 1).
- **Time to target** = users to target / users per second: the two standard errors combined,
  degrees of freedom by Welch-Satterthwaite.
- **Break-even.** Against a compared step, a step *needs* the speed ratio users to target (this) /
  users to target (compared) to reach the target as soon: a property of the model and the data,
  from the seeds alone, which a reader can take to other hardware. It *has* the measured speed
  factor. Its time-to-target ratio is needs / has.

A verdict is decided by whether the ratio's interval excludes 1: speed "faster" / "slower" /
"not distinguishable" (or "same configuration"), time to target "sooner" / "later" / "not
distinguishable". A verdict is *firm* when its interval at ``FIRM`` (99%) says the same: one
decided at 95% but not at 99% sits near its boundary, where a rerun on the same machine decides
it about half the time; adaptive repetition (``ablations.repeat``) measures such pairs until they
are firm. A figure a record cannot support (one window, one seed: runs made before seeds were
repeated) has no interval and its verdict says so: nothing is invented.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablations import disturbance

LEVEL = 0.95
"""Two-sided coverage of every interval."""
FIRM = 0.99
"""The level at which a verdict is firm (``Estimate.sign(FIRM)``): what repetition aims for."""

FASTER, SLOWER, SAME, UNDECIDED = "faster", "slower", "same configuration", "not distinguishable"
SOONER, LATER, UNKNOWN, NEITHER = "sooner", "later", "not known (one seed per curve)", "neither reaches the target"
DECIDED = (FASTER, SLOWER, SOONER, LATER)
"""The verdicts that say a difference was measured (what two runs must agree on)."""


def t_quantile(df: float, level: float = LEVEL) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))  # df infinite: the normal quantile


@dataclass(frozen=True)
class Estimate:
    """A positive figure with the standard error of its log and that error's degrees of freedom.

    ``se`` 0 and ``df`` infinite: exact by construction (a configuration against itself). ``df`` 0: the
    records cannot give an interval (one seed); ``lo`` and ``hi`` are then the value and ``known`` is False.
    """

    value: float
    se: float = 0.0
    df: float = math.inf

    @classmethod
    def unknown(cls, value: float) -> Estimate:
        """A figure the records give no interval for (``df`` 0: a cell says "(no interval)")."""
        return cls(value, 0.0, 0.0)

    @property
    def known(self) -> bool:
        return self.df > 0

    @property
    def half_width(self) -> float:
        """Of the log interval."""
        return t_quantile(self.df) * self.se if self.se and self.known else 0.0

    @property
    def lo(self) -> float:
        return self.value * math.exp(-self.half_width)

    @property
    def hi(self) -> float:
        return self.value * math.exp(self.half_width)

    def __truediv__(self, other: Estimate) -> Estimate:
        """The ratio of two independent estimates: variances of the logs add, Welch-Satterthwaite df."""
        if not (self.known and other.known):
            return Estimate.unknown(self.value / other.value)
        a, b = self.se ** 2, other.se ** 2
        if a + b == 0:
            return Estimate(self.value / other.value)
        df = (a + b) ** 2 / sum(v ** 2 / d for v, d in ((a, self.df), (b, other.df)) if v)
        return Estimate(self.value / other.value, math.sqrt(a + b), df)

    def inverse(self) -> Estimate:
        return Estimate(1.0 / self.value, self.se, self.df)

    def sign(self, level: float = LEVEL) -> int:
        """+1 when the interval at ``level`` lies above 1, -1 below, 0 when it holds 1 (or there is none)."""
        if not self.known:
            return 0
        if not self.se:
            return 1 if self.value > 1 else -1 if self.value < 1 else 0
        half = t_quantile(self.df, level) * self.se
        log = math.log(self.value)
        return 1 if log - half > 0 else -1 if log + half < 0 else 0

    def firm(self) -> bool:
        """Whether the verdict at ``LEVEL`` holds at ``FIRM`` too (undecided is never firm: it may still separate)."""
        return self.sign() != 0 and self.sign(FIRM) == self.sign()

    def text(self, digits: int = 2, unit: str = "x") -> str:
        """"2.15x (2.03-2.28)"; "1.00x" when exact; "2.15x (no interval)" when the records give none."""
        f = f"{{:.{digits}f}}"
        if not self.known:
            return f"{f.format(self.value)}{unit} (no interval)"
        if not self.se:
            return f.format(self.value) + unit
        return f"{f.format(self.value)}{unit} ({f.format(self.lo)}-{f.format(self.hi)})"


def known(estimate: Estimate | None) -> bool:
    """An estimate that has an interval."""
    return estimate is not None and estimate.known


# -- speed ---------------------------------------------------------------------------------------------

def window_rates(speed: dict[str, Any], key: str) -> dict[str, float]:
    """Round -> that window's median users/s, for one speed configuration: the windows its figures rest on."""
    windows = disturbance.quiet(speed["windows"].get(key, {}), disturbance.threshold_of(speed))
    return {r: w["users_per_s_median"] for r, w in windows.items()}


def speed_estimate(speed: dict[str, Any], key: str) -> Estimate | None:
    """A configuration's users/s (median of its windows) with its interval; None with fewer than 2 windows."""
    rates = list(window_rates(speed, key).values())
    if len(rates) < 2:
        return None
    logs = np.log(rates)
    return Estimate(float(np.median(rates)), float(np.std(logs, ddof=1) / math.sqrt(len(rates))), len(rates) - 1)


def factor(speed: dict[str, Any], key: str, over: str) -> Estimate | None:
    """users/s of ``key`` over ``over``: the ratio of their medians, its interval from the per-round ratios
    (rounds both were timed in); 1 exactly for the same configuration, None with fewer than 2 common rounds."""
    if key == over:
        return Estimate(1.0)
    a, b = window_rates(speed, key), window_rates(speed, over)
    common = sorted(set(a) & set(b), key=int)
    if len(common) < 2:
        return None
    logs = np.log([a[r] / b[r] for r in common])
    point = float(np.median(list(a.values())) / np.median(list(b.values())))
    return Estimate(point, float(np.std(logs, ddof=1) / math.sqrt(len(common))), len(common) - 1)


def speed_verdict(has: Estimate | None, same: bool = False) -> str:
    if same:
        return SAME
    if has is None:
        return UNDECIDED + " (fewer than 2 windows)"
    return {1: FASTER, -1: SLOWER, 0: UNDECIDED}[has.sign()]


# -- quality ---------------------------------------------------------------------------------------------

def seed_curves(record: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every seed's curve of a quality record: ``curve`` (the first seed), then ``more_seeds``."""
    return [record["curve"], *(s["curve"] for s in record.get("more_seeds", []))]


METRICS = ("ndcg@100", "recall@20", "recall@50")


def mean_curve(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The seed-mean curve (the seeds share one validation grid), each point with the seeds' range
    of NDCG@100 (``ndcg_lo``, ``ndcg_hi``; equal with one seed)."""
    curves = seed_curves(record)
    n = min(len(c) for c in curves)
    out = []
    for i in range(n):
        points = [c[i] for c in curves]
        ndcg = [p["ndcg@100"] for p in points]
        out.append({**points[0], **{m: float(np.mean([p[m] for p in points])) for m in METRICS},
                    "ndcg_lo": min(ndcg), "ndcg_hi": max(ndcg)})
    return out


def crossing(curve: Sequence[dict[str, Any]], target: float) -> float | None:
    """Updates at which ``curve`` first reaches ``target``, interpolated linearly between the validations
    either side (the first validation itself when it is already there); None when it never does."""
    before = None
    for p in curve:
        if p["ndcg@100"] >= target:
            if before is None:
                return float(p["updates"])
            u0, v0 = before["updates"], before["ndcg@100"]
            return u0 + (p["updates"] - u0) * (target - v0) / (p["ndcg@100"] - v0)
        before = p
    return None


@dataclass(frozen=True)
class SeedSpread:
    """The pooled standard deviation of log updates to target over a run's configurations."""

    sd: float
    df: int


def seed_spread(records: Iterable[dict[str, Any]], target: float) -> SeedSpread | None:
    """Pooled over the configurations with >= 2 seeds whose mean curve reaches the target; a seed that
    does not reach it within its curve counts at the curve's end (a lower bound). None: no replicated curve."""
    squares, df = 0.0, 0
    for record in records:
        curves = seed_curves(record)
        if len(curves) < 2 or crossing(mean_curve(record), target) is None:
            continue
        logs = np.log([crossing(c, target) or float(c[-1]["updates"]) for c in curves])
        squares += float(np.sum((logs - logs.mean()) ** 2))
        df += len(curves) - 1
    return SeedSpread(math.sqrt(squares / df), df) if df else None


def users_to_target(record: dict[str, Any], train: dict[str, Any], target: float,
                    spread: SeedSpread | None) -> Estimate | None:
    """Users a configuration (``train``, a ``TrainConfig`` as a dict) trains until its seed-mean curve reaches
    the target (its whole curve, not cut at T), with the pooled seed spread (none: no interval); None when
    it never does."""
    updates = crossing(mean_curve(record), target)
    if updates is None:
        return None
    users = updates * train["batch_size"] * (train["workers"] if train["batch_scope"] == "worker" else 1)
    if spread is None:
        return Estimate.unknown(users)
    return Estimate(users, spread.sd / math.sqrt(len(seed_curves(record))), spread.df)


# -- comparisons -------------------------------------------------------------------------------------------

def compare(speed: dict[str, Any], step: dict[str, Any], other: dict[str, Any], curves: dict[str, dict[str, Any]],
            target: float, spread: SeedSpread | None) -> dict[str, Any]:
    """``step`` against ``other`` (run.json step records): the speed factor it has, the ratio it needs,
    their time-to-target ratio (needs / has) and both verdicts. ``curves``: quality record by step slug
    (``report.load_run``'s, each naming its ``owner``)."""
    key, other_key = _speed_key(step), _speed_key(other)
    has = factor(speed, key, other_key)
    out: dict[str, Any] = {"against": other["name"], "has": has, "speed": speed_verdict(has, key == other_key),
                           "needs": None, "ttt": None}
    mine, theirs = curves[step["slug"]], curves[other["slug"]]
    if mine["owner"] == theirs["owner"]:
        needs = Estimate(1.0)  # the same quality curve: the same users to target
    else:
        a = users_to_target(mine, step["train"], target, spread)
        b = users_to_target(theirs, other["train"], target, spread)
        if a is None or b is None:
            out["time"] = LATER if b is not None else SOONER if a is not None else NEITHER
            return out
        needs = Estimate(a.value / b.value, math.hypot(a.se, b.se), spread.df) if spread else \
            Estimate.unknown(a.value / b.value)
    out["needs"] = needs
    if not needs.known:
        out["time"] = UNKNOWN
    elif has is None:
        out["time"] = UNDECIDED + " (fewer than 2 windows)"
    else:
        out["ttt"] = needs / has
        out["time"] = {1: LATER, -1: SOONER, 0: UNDECIDED}[out["ttt"].sign()]
    return out


def _speed_key(step: dict[str, Any]) -> str:
    """A run.json step's speed key (recorded by runs since the keys were; derived for older ones)."""
    if "speed_key" in step:
        return str(step["speed_key"])
    from ablations.ladder import SPEED_FIELDS

    return ",".join(f"{name}={step['train'][name]}" for name in SPEED_FIELDS)


def annotate(rows: list[dict[str, Any]], records: dict[str, Any]) -> SeedSpread | None:
    """Add to each row that ran (``report.derive``'s): its seeds, users/s and time-to-target intervals, and
    its comparisons with the step before (``vs_previous``) and the first (``vs_first``). Returns the spread."""
    run, speed, curves = records["run"], records["speed"], records["curves"]
    target = run["target_ndcg"]
    spread = seed_spread({c["owner"]: c for c in curves.values()}.values(), target)
    steps = {s["slug"]: s for s in run["steps"]}
    first: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    for row in rows:
        if row["status"] != "done":
            continue
        step, curve = steps[row["slug"]], curves[row["slug"]]
        rate = speed_estimate(speed, _speed_key(step))
        users = users_to_target(curve, step["train"], target, spread)
        row["seeds"] = len(seed_curves(curve))
        row["users_per_s_interval"] = rate
        row["time_to_target_interval"] = None
        if row["time_to_target_s"] is not None and rate is not None and users is not None:
            # seconds = users / users per second: the seeds' and the windows' errors combined
            row["time_to_target_interval"] = Estimate(row["time_to_target_s"], users.se, users.df) / \
                Estimate(1.0, rate.se, rate.df)
        row["vs_first"] = compare(speed, step, first, curves, target, spread) if first else None
        row["vs_previous"] = compare(speed, step, previous, curves, target, spread) if previous else None
        first = first or step
        previous = step
    return spread


def sentence(comparison: dict[str, Any]) -> str:
    """One comparison in words: "against sparse input: speed 1.23x (1.19-1.27): faster; to the target
    needs 4.20x (3.95-4.47), has 1.23x (1.19-1.27): later"."""
    c = comparison
    has = c["has"].text() if c["has"] else "no interval (fewer than 2 windows)"
    speed = "the same speed configuration" if c["speed"] == SAME else f"{has}: {c['speed']}"
    needs = c["needs"]
    if needs is None:
        time = c["time"]
    elif needs.value == 1.0 and needs.se == 0 and needs.known:
        time = f"the same quality curve, so it follows speed: {c['time']}"
    else:
        time = f"needs {needs.text()}, has {has}: {c['time']}"
    return f"against {c['against']}: speed {speed}; to the target {time}"


# -- tables and sentences --------------------------------------------------------------------------------

def cell(value: float, estimate: Estimate | None, digits: int = 2, unit: str = "") -> str:
    """A table cell: "1.80 (1.72-1.88)"; the value alone when exact or not compared; "(no interval)"
    when the records cannot give one."""
    f = f"{{:.{digits}f}}"
    if estimate is None or (estimate.known and not estimate.se):
        return f.format(value) + unit
    if not estimate.known:
        return f"{f.format(value)}{unit} (no interval)"
    return f"{f.format(value)}{unit} ({f.format(value * estimate.lo / estimate.value)}-" \
           f"{f.format(value * estimate.hi / estimate.value)})"


def seconds(value: float, estimate: Estimate | None) -> str:
    """A time to target as a cell, "(no interval)" without ``estimate``."""
    return cell(value, estimate or Estimate.unknown(value), second_digits(value), " s")


def second_digits(value: float) -> int:
    """Digits of a time in seconds: whole seconds, tenths under 10 s (a smoke run's T is a few seconds)."""
    return 0 if value >= 10 else 1


CSV_COLUMNS = ("seeds", "users_per_s_lo", "users_per_s_hi", "time_to_target_lo", "time_to_target_hi",
               *(f"{what}_vs_{than}" for than in ("previous", "first")
                 for what in ("speed", "has", "has_lo", "has_hi", "needs", "needs_lo", "needs_hi", "time")))


def csv_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The row's intervals and verdicts as CSV cells (empty where there is none)."""
    if row["status"] != "done":
        return {}
    out: dict[str, Any] = {"seeds": row["seeds"]}
    for name, estimate in (("users_per_s", row["users_per_s_interval"]),
                           ("time_to_target", row["time_to_target_interval"])):
        if known(estimate):
            out.update({f"{name}_lo": estimate.lo, f"{name}_hi": estimate.hi})
    for than in ("previous", "first"):
        c = row[f"vs_{than}"]
        if c is None:
            continue
        out[f"speed_vs_{than}"], out[f"time_vs_{than}"] = c["speed"], c["time"]
        for what in ("has", "needs"):
            if c[what] is not None:
                out[f"{what}_vs_{than}"] = c[what].value
                if c[what].known:
                    out[f"{what}_lo_vs_{than}"], out[f"{what}_hi_vs_{than}"] = c[what].lo, c[what].hi
    return out


def comparisons(derived: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row, comparison) in table order: against the step before and the first (only the first in a
    leave-one-out run, whose steps each differ from it alone)."""
    keys = ("vs_first",) if derived["mode"] == "leave-one-out" else ("vs_previous", "vs_first")
    out = []
    for row in derived["rows"]:
        if row["status"] != "done":
            continue
        seen = set()
        for key in keys:
            c = row[key]
            if c is not None and c["against"] not in seen:
                seen.add(c["against"])
                out.append((row, c))
    return out


def firm(c: dict[str, Any], kind: str) -> bool:
    """Whether a comparison's ``kind`` ("speed" or "time") verdict is decided and holds at ``FIRM``."""
    estimate = c["has"] if kind == "speed" else c["ttt"]
    if c[kind] not in DECIDED:
        return False
    return estimate is None or estimate.firm()  # None: decided without a ratio (one side never reaches it)


def _firm(c: dict[str, Any]) -> str:
    return ", ".join(kind for kind in ("speed", "time") if firm(c, kind)) or "-"


def _needs(c: dict[str, Any]) -> str:
    needs = c["needs"]
    if needs is None:
        return "-"
    return "1 (same curve)" if needs.known and not needs.se else needs.text()


def table(derived: dict[str, Any]) -> list[str]:
    """The verdicts as a Markdown table (lines), with what its columns mean."""
    spread = derived["seed_spread"]
    lines = [f"Verdicts, {LEVEL:.0%} intervals. *has*: users/s over the compared step's (per-round ratios of the "
             "timing windows); *needs*: the ratio at which it would reach the target as soon (users to target over "
             "the compared step's, from the seeds); time to target: needs / has; *firm*: the verdicts that hold at "
             f"{FIRM:.0%} too (a decided one that is not sits near its boundary: a rerun may call it not "
             "distinguishable). Seed spread (sd of log users to target, pooled): "
             + (f"{spread.sd:.3f} ({spread.df} df)." if spread else "none (one seed per curve)."),
             "", "| step | against | speed | needs | has | time to target | firm |", "|---|---|---|---|---|---|---|"]
    for row, c in comparisons(derived):
        lines.append(f"| {row['name']} | {c['against']} | {c['speed']} | {_needs(c)} | "
                     f"{c['has'].text() if c['has'] else '-'} | {c['time']} | {_firm(c)} |")
    return [*lines, "", repetition(derived.get("repeat"))]


def repetition(repeat: dict[str, Any] | None) -> str:
    """What adaptive repetition (``ablations.repeat``) did, from its record."""
    if repeat is None:
        return "Adaptive repetition: none (the run predates it)."
    said = [f"{pair} in speed: {_stopped(what)}" for pair, what in repeat["speed"].items()] + \
           [f"{pair} in time to target: {_stopped(what)}" for pair, what in repeat["time"].items()]
    return (f"Adaptive repetition (repeat.json): {len(repeat['rounds'])} extra round(s) of windows, "
            f"{len(repeat['seeds'])} extra seed(s), {repeat['spent_s']:.0f} s of at most {repeat['cap_s']:.0f} s "
            + (f"+ {repeat['given_back_s']:.0f} s given back for windows set aside as disturbed "
               if repeat.get("given_back_s") else "") +
            f"(caps: {repeat['max_windows']} windows, {repeat['max_seeds']} seeds)"
            + (": " + "; ".join(said) if said else "; every compared verdict was firm without it") + ".")


OUT_OF_SECONDS = "time: "
"""The prefix ``repeat.json`` puts on a pair whose repetition stopped because its seconds ran out."""


def _stopped(what: str) -> str:
    """A pair's state as ``repeat.json`` keeps it, said in words: ``OUT_OF_SECONDS`` would read as the time to
    target beside "in speed: " and "in time to target: "."""
    return f"out of seconds, {what.removeprefix(OUT_OF_SECONDS)}" if what.startswith(OUT_OF_SECONDS) else what


def markdown(derived: dict[str, Any]) -> str:
    """``verdicts.md``: one part per step (``<!-- part: SLUG -->``), each a sentence per comparison; the
    README and docs include a run's parts (``ablations.docs``), so a rerun that flips a verdict changes them."""
    out = []
    for row in derived["rows"]:
        if row["status"] != "done":
            continue
        rate = cell(row["users_per_s"], row["users_per_s_interval"], 0)
        ttt = seconds(row["time_to_target_s"], row["time_to_target_interval"]) \
            if row["time_to_target_s"] is not None else f"not reached within T = {derived['budget_s']:.0f} s"
        said = [sentence(c) for r, c in comparisons(derived) if r is row]
        out += [f"<!-- part: {row['slug']} -->",
                f"- **{row['name']}**: {rate} users/s; time to target {ttt}, {row['seeds']} seed"
                f"{'s' if row['seeds'] != 1 else ''}" + ("; " + "; ".join(said) if said else "") + ".",
                "<!-- end part -->"]
    return "\n".join(out) + "\n"


Said = dict[tuple[str, str, str], tuple[str, bool]]
"""(step, against, "speed" or "time") -> (verdict, firm): every verdict a run states."""


def _said(derived: dict[str, Any]) -> Said:
    return {(row["name"], c["against"], kind): (c[kind], firm(c, kind)) for row, c in comparisons(derived)
            for kind in ("speed", "time")}


def _differ(one: str | None, two: str | None) -> bool:
    """Two runs differ on a verdict when either calls it a measured difference and the other does not say the same."""
    return (one in DECIDED or two in DECIDED) and one != two


def _word(verdict: tuple[str, bool] | None) -> str:
    if verdict is None:
        return "-"
    word, sure = verdict
    return word + (" (not firm)" if word in DECIDED and not sure else "")


def agreement(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> str:
    """Two runs' verdicts side by side as Markdown (``python -m ablations agree --out``): every verdict either
    states, whether they agree, and a count; what the docs include about a pair of runs."""
    first, second = _said(a), _said(b)
    keys = [*first, *(k for k in second if k not in first)]
    lines = [f"| step | against | | {labels[0]} | {labels[1]} | agree |", "|---|---|---|---|---|---|"]
    differ = decided = alike = 0
    for key in keys:
        one, two = first.get(key), second.get(key)
        words = (one[0] if one else None, two[0] if two else None)
        bad = _differ(*words)
        differ += bad
        decided += words[0] in DECIDED or words[1] in DECIDED
        alike += bool(one and two and one == two and one[1] and words[0] in DECIDED)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {_word(one)} | {_word(two)} | {'**no**' if bad else 'yes'} |")
    head = (f"{len(keys)} verdicts; {decided} called a measured difference by either run, {differ} of them not by "
            f"the other; {alike} decided alike and firm at {FIRM:.0%} in both.")
    return "\n".join([head, "", *lines]) + "\n"


def disagreements(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Where two runs of one ladder (``report.derive``'s) differ on a verdict that either calls a measured
    difference: what a rerun must not do. One line per such verdict, "(not firm)" after a decided verdict
    that does not hold at ``FIRM`` (one near its boundary)."""
    first, second = _said(a), _said(b)
    return [f"{step} against {against}, {kind}: {_word(first.get(key))} in the first run, "
            f"{_word(second.get(key))} in the second"
            for key in sorted(first.keys() | second.keys()) for step, against, kind in [key]
            if _differ(first[key][0] if key in first else None, second[key][0] if key in second else None)]
