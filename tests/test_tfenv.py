"""``import vaecf`` puts TensorFlow on its BFC CPU allocator unless the user says otherwise."""

import os
import subprocess
import sys

import pytest

from vaecf.tfenv import ALLOCATOR_ENV, cpu_allocator

# In a fresh process: import vaecf first, then run one op and ask TensorFlow for the CPU
# allocator's statistics, which only a BFC pool keeps (malloc has none: ValueError).
PROBE = """
import os, vaecf, tensorflow as tf
tf.constant([1.0]) + 1.0
try:
    stats = tf.config.experimental.get_memory_info("CPU:0")
    kind = "bfc" if "peak" in stats else "malloc"
except ValueError:
    kind = "malloc"
print(os.environ.get("{env}"), vaecf.tfenv.cpu_allocator(), kind)
""".replace("{env}", ALLOCATOR_ENV)


def _probe(env_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    if env_value is not None:
        env[ALLOCATOR_ENV] = env_value
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
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
