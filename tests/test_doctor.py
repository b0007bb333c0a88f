"""``vaecf doctor``: the machine report, and a ladder's steps as the runner would resolve them here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vaecf import doctor
from vaecf.errors import VaecfError

CPU = {"cpu": "Test CPU", "cores": 2, "cpu_flags": ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"],
       "gpus": [], "gpu_count": 0, "gpu_driver": "n/a", "gpu_memory_total_bytes": "n/a", "cuda": "12.5.1",
       "cudnn": "9", "nccl": "n/a", "gpu_memory_growth": True, "tf32": {"float32": False},
       "tf_cpu_allocator": "bfc", "versions": {"tensorflow": "2.21.0", "horovod": None}, "horovod_build": None,
       "gpu_loader": ["cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used."]}
GPUS = {**CPU, "gpus": ["NVIDIA H100 80GB HBM3"] * 2, "gpu_count": 2, "gpu_driver": "550.54.15",
        "gpu_memory_total_bytes": [80 * 2**30] * 2, "gpu_loader": []}


def _doctor(machine: dict[str, Any], ladder: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setattr(doctor, "probe", lambda: machine)
    monkeypatch.chdir(tmp_path)  # the budget's data is prepared under .cache/data, as the runner does
    lines: list[str] = []
    doctor.doctor(ladder, "smoke", say=lines.append)
    return lines


def test_gpu_ladder_on_a_cpu_machine_names_each_step_then_refuses(monkeypatch, tmp_path) -> None:
    lines: list[str] = []
    monkeypatch.setattr(doctor, "probe", lambda: CPU)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(VaecfError, match="needs a GPU and TensorFlow sees none.*Could not find cuda drivers") as e:
        doctor.doctor("gpu-check", "smoke", say=lines.append)
    assert "\n" not in str(e.value) and ".[gpu]" in str(e.value)
    text = "\n".join(lines)
    assert "AMX bfloat16" in text and "AVX512_BF16" in text and "AVX-512" in text
    assert "GPUs: none seen" in text and "Could not find cuda drivers" in text
    assert "float16: skipped: float16 mixed precision needs a GPU" in text
    assert "Horovod not installed: tf.distribute instead" in text


def test_gpu_ladder_on_two_gpus_runs_as_written(monkeypatch, tmp_path) -> None:
    text = "\n".join(_doctor(GPUS, "gpu-check", monkeypatch, tmp_path))
    assert "GPU:1 NVIDIA H100 80GB HBM3, 80.0 GiB" in text and "driver 550.54.15" in text
    assert "float16: as written" in text and "skipped" not in text


def test_case_study_on_a_cpu_machine_says_what_replaces_float16(monkeypatch, tmp_path) -> None:
    text = "\n".join(_doctor(CPU, "case-study", monkeypatch, tmp_path))
    assert "float16 replaced by precision=mixed_bfloat16" in text


def test_a_bad_ladder_name_is_one_line_before_anything_slow(monkeypatch) -> None:
    monkeypatch.setattr(doctor, "probe", lambda: pytest.fail("probed before checking the name"))
    with pytest.raises(VaecfError, match="no ladder 'nope' \\(known: .*gpu-check"):
        doctor.doctor("nope", "smoke")
    with pytest.raises(VaecfError, match="--budget 'huge': not a budget; allowed: full, quick, smoke"):
        doctor.doctor("gpu-check", "huge")


def test_loader_lines_keep_tensorflows_words_about_cuda_once() -> None:
    stderr = ("I0000 00:00:1796526455.155840   29890 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
              "I0000 00:00:1796526486.006549   29890 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
              "I0000 00:00:1796526486.1   29890 cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n"
              "W0000 00:00:1.0  1 dso_loader.cc:78] Could not load dynamic library 'libcudnn.so.9'\n")
    assert doctor.loader_lines(stderr) == ["cudart_stub.cc:31] Could not find cuda drivers on your machine.",
                                           "dso_loader.cc:78] Could not load dynamic library 'libcudnn.so.9'"]


@pytest.mark.slow
def test_vaecf_doctor_on_this_machine(tmp_path) -> None:
    """The real probe, through the command line: a report, and exit 0 without a ladder."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "vaecf", "doctor"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ,
                                           "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("TensorFlow ") and "CPU allocator:" in out.stdout
