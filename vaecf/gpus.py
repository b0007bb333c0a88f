"""Which GPUs a process may use, decided from the environment alone (no TensorFlow).

A parent that starts training children (the ablation runner, ``vaecf bench --workers``) must
not give TensorFlow's GPU memory to itself, and each child should hold memory on its own GPUs
only: TensorFlow creates a context, and without memory growth reserves nearly all memory, on
every GPU it can see. So a parent narrows ``CUDA_VISIBLE_DEVICES`` for each child before it
starts (``first``), and a worker that a scheduler (Slurm, mpirun) already gave exactly one GPU
uses that one whatever its local rank (``assigned_one``; ``vaecf.distributed.pin_gpu``).
Memory growth itself is set for every process by ``vaecf.tfenv``.
"""

from __future__ import annotations

from collections.abc import Mapping

VISIBLE = "CUDA_VISIBLE_DEVICES"


def visible(env: Mapping[str, str]) -> list[str] | None:
    """The GPU ids ``CUDA_VISIBLE_DEVICES`` allows, in order; None when it is unset (all of the host's).

    CUDA stops reading the list at the first invalid id: ``-1`` (or an empty value) means no GPU.
    """
    value = env.get(VISIBLE)
    if value is None:
        return None
    ids: list[str] = []
    for item in (v.strip() for v in value.split(",")):
        if not item or item.startswith("-"):
            break
        ids.append(item)
    return ids


def first(env: Mapping[str, str], n: int) -> dict[str, str]:
    """``env`` for a child that should use the first ``n`` GPUs this process may use (0..n-1 when unset).

    On a host without GPUs the variable is harmless: TensorFlow runs on the CPU as before.
    """
    ids = visible(env)
    chosen = [str(i) for i in range(n)] if ids is None else ids[:n]
    return {**env, VISIBLE: ",".join(chosen) if chosen else "-1"}


def assigned_one(env: Mapping[str, str]) -> bool:
    """Whether this process was given exactly one GPU through ``CUDA_VISIBLE_DEVICES`` (a scheduler's way)."""
    ids = visible(env)
    return ids is not None and len(ids) == 1
