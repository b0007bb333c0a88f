"""``import vaecf`` puts TensorFlow on its BFC CPU allocator unless the user says otherwise."""

import os
import subprocess
import sys

import pytest

from vaecf.tfenv import ALLOCATOR_ENV, cpu_allocator

# In a fresh process: import vaecf first, then fill and free a 400 MB tensor and see whether its
# pages stay resident: a BFC pool keeps them for the next step, malloc hands them back (munmap).
# (Asking TensorFlow for the allocator's statistics does not tell: TensorFlow 2.21 keeps them for
# malloc too.) oneDNN's ops, on by default where the CPU has AVX512_BF16 or AMX, bring an
# allocator of their own that pools whatever TF_CPU_ALLOCATOR_USE_BFC says (measured on the AMX
# Xeon: 397 MB kept with the variable false), so these tests turn them off to see TensorFlow's own
# choice: the one the variable makes.
PROBE = """
import os, vaecf, tensorflow as tf
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
tf.constant([1.0]) + 1.0
before = rss()
x = tf.fill([100_000_000], 1.0)
float(x[-1])
del x
kind = "bfc" if rss() - before > 200e6 else "malloc"
print(os.environ.get("{env}"), vaecf.tfenv.cpu_allocator(), kind)
""".replace("{env}", ALLOCATOR_ENV)


def _probe(env_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    if env_value is not None:
        env[ALLOCATOR_ENV] = env_value
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.slow
def test_import_vaecf_selects_the_bfc_allocator_and_tensorflow_uses_it() -> None:
    assert _probe(None) == ["true", "bfc", "bfc"]


@pytest.mark.slow
def test_a_users_setting_wins() -> None:
    assert _probe("false") == ["false", "malloc", "malloc"]


def test_cpu_allocator_reads_the_variable(monkeypatch) -> None:
    for value, kind in (("true", "bfc"), ("1", "bfc"), ("TRUE", "bfc"), ("false", "malloc"), ("", "malloc")):
        monkeypatch.setenv(ALLOCATOR_ENV, value)
        assert cpu_allocator() == kind


def test_import_vaecf_turns_on_gpu_memory_growth_for_this_process_and_its_children() -> None:
    child = "import os; print(os.environ.get('TF_FORCE_GPU_ALLOW_GROWTH'))"
    probe = (f"import os, subprocess, sys, vaecf; {child[11:-1]}, "
             f"subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout.strip())")
    env = {k: v for k, v in os.environ.items() if k != "TF_FORCE_GPU_ALLOW_GROWTH"}
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.split() == ["true", "true"]
    env["TF_FORCE_GPU_ALLOW_GROWTH"] = "false"  # a user's own setting wins
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.split() == ["false", "false"]
