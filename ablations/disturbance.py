"""Timing windows that know when they were disturbed: the policy, the repeats and what a step's windows say.

Every speed window (``ablations.speed``) records the machine's state during it, measured by its
child around the timed steps (``vaecf.machine_state``: other processes' and the hypervisor's
share of all CPUs' time, the load average, the CPU clock), and the rate of a short GEMM at the
step's shape in that round's child. A window is *disturbed* when other processes and steal
together took more than ``Policy.threshold`` of the machine's CPU time during it: on 2 cores,
the default 10% is a fifth of a core. A disturbed window is timed again, at most
``Policy.repeats`` times and only while each attempt is quieter than the one before (on a
machine that stays busy another attempt measures the same), and the least disturbed attempt is
kept (the others stay in its record under ``attempts``). A window still disturbed is set aside:
every figure rests on a configuration's undisturbed windows (``quiet``) while it has at least
two, and adaptive repetition (``ablations.repeat``) times the rounds it lacks. A step with a
disturbed window left is flagged in the table. ``--wait-quiet SECONDS`` waits before each round's child until the
others' share over a second is below the threshold, at most that long, and records whether it
got there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vaecf.config import AT_LEAST_0, FRACTION_OPEN, POSITIVE, validate
from vaecf.errors import VaecfError
from vaecf.machine_state import between, sample


@dataclass(frozen=True)
class Policy:
    threshold: float = 0.10
    """Others' plus steal share of all CPUs' time above which a window is disturbed."""
    repeats: int = 2
    """At most this many more attempts at a disturbed window."""
    wait_quiet_s: float = 0.0
    """Before each round's child, wait up to this long for the others' share to fall below ``threshold``."""
    poll_s: float = 1.0
    """The interval over which the others' share is measured while waiting."""

    def __post_init__(self) -> None:
        validate(self, {"threshold": FRACTION_OPEN, "repeats": AT_LEAST_0, "wait_quiet_s": AT_LEAST_0,
                        "poll_s": POSITIVE})


DEFAULT = Policy()
"""A run's policy unless its command says otherwise."""


def parse_seconds(text: str | None, flag: str) -> float:
    """A command line's number of seconds (None: 0), checked before any work starts."""
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise VaecfError(f"{flag} {text}: must be a number of seconds >= 0 (given on the command line)")
    return value


def disturbance(state: dict[str, Any] | None) -> float | None:
    """Others' plus steal share of a window's CPU time (None where it was not measured)."""
    if not state or state.get("others_share") is None:
        return None
    return float(state["others_share"] + (state.get("steal_share") or 0.0))


def disturbed(window: dict[str, Any], threshold: float) -> bool:
    share = disturbance(window.get("state"))
    return share is not None and share > threshold


def quiet(windows: dict[str, dict[str, Any]], threshold: float) -> dict[str, dict[str, Any]]:
    """Round -> window, the undisturbed ones: what a configuration's figures rest on. All of them while
    fewer than two are undisturbed (a figure then rests on what there is, and the table flags it).

    Why set aside rather than average in: a disturbance falls on part of a round, so pairing by round
    does not cancel it. In the Xeon run at f13ad71, round 1's larger-batch window ran at 0.53x of its
    median with others taking 30% of the CPUs, sparse input's beside it at 0.93x with 5%: that one
    window made the factor 1.25x (0.99-1.57), not distinguishable, where the run with a CPU hog said
    1.21x (1.16-1.26)."""
    kept = {r: w for r, w in windows.items() if not disturbed(w, threshold)}
    return kept if len(kept) >= 2 else windows


def threshold_of(record: dict[str, Any]) -> float:
    """The disturbance threshold a speed record was timed under (the default for records before it was kept)."""
    return float(record.get("disturbance", {}).get("threshold", DEFAULT.threshold))


def quieter(window: dict[str, Any], than: dict[str, Any]) -> bool:
    """Whether ``window`` was less disturbed than ``than`` (False where either was not measured)."""
    a, b = disturbance(window.get("state")), disturbance(than.get("state"))
    return a is not None and b is not None and a < b


def keep(first: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """Of two attempts at one window, the less disturbed, with every attempt set aside listed under ``attempts``."""
    tried = [*first.pop("attempts", []), first]
    share = [disturbance(w.get("state")) for w in (tried[-1], again)]
    if share[1] is not None and (share[0] is None or share[1] < share[0]):
        return {**again, "attempts": tried}
    return {**first, "attempts": [*tried[:-1], _set_aside(again)]}


def _set_aside(window: dict[str, Any]) -> dict[str, Any]:
    return {k: window[k] for k in ("users_per_s_median", "state", "gemm_flops") if k in window}


def wait_quiet(policy: Policy, log: Callable[[str], None], root: int | None = None) -> dict[str, Any] | None:
    """Wait until others' share over ``policy.poll_s`` is below the threshold, at most ``wait_quiet_s``.

    Returns what happened (None when no wait was asked): seconds waited, whether it got quiet,
    and the last share measured.
    """
    if policy.wait_quiet_s <= 0:
        return None
    root = os.getpid() if root is None else root
    start = time.monotonic()
    while True:
        before = sample(root)
        time.sleep(policy.poll_s)
        share = disturbance(between(before, sample(root)))
        waited = time.monotonic() - start
        if share is None or share <= policy.threshold or waited >= policy.wait_quiet_s:
            quiet = share is not None and share <= policy.threshold
            if not quiet:
                log(f"not quiet after {waited:.0f} s (others' CPU share {_pct(share)}): timing anyway")
            return {"waited_s": waited, "quiet": quiet, "others_share": share}


def summarise(windows: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """What a step's windows say about the machine: disturbed ones left, repeats, GEMM rate and clock ranges."""
    shares = [s for s in (disturbance(w.get("state")) for w in windows) if s is not None]
    gemm = [w["gemm_flops"] for w in windows if w.get("gemm_flops")]
    loads = [w["state"]["load1"] for w in windows if (w.get("state") or {}).get("load1") is not None]
    return {"disturbed_windows": sum(disturbed(w, threshold) for w in windows) if shares else None,
            "others_share_max": max(shares) if shares else None,
            "repeats": sum(len(w.get("attempts", [])) for w in windows),
            "not_quiet": sum(not w["quiet_wait"]["quiet"] for w in windows if w.get("quiet_wait")),
            "load1_max": max(loads) if loads else None,
            "round_gemm_min": min(gemm) if gemm else None, "round_gemm_max": max(gemm) if gemm else None}


def note(summary: dict[str, Any], windows: int) -> str | None:
    """The table's note for a step whose windows stayed disturbed (None when none did or none was measured)."""
    if not summary.get("disturbed_windows"):
        return None
    aside = summary.get("windows_set_aside")
    return (f"{summary['disturbed_windows']} of {windows} timing windows disturbed (others' CPU share up to "
            f"{_pct(summary['others_share_max'])}, {summary['repeats']} repeat(s)"
            + ("" if aside is None else f"; {'set aside' if aside else 'kept: fewer than 2 undisturbed'}") + ")")


def _pct(share: float | None) -> str:
    return "unknown" if share is None else f"{share:.0%}"
