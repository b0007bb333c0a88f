import pytest

from ablations.ladder import BUDGETS, Hardware, Ladder, resolve

CPU2 = Hardware(gpus=0, cores=2, horovod=False)
GPU4 = Hardware(gpus=4, cores=32, horovod=True)


def steps(name: str, hardware: Hardware, train_users: int = 100_000):
    return resolve(Ladder.load(name), hardware, BUDGETS["quick"], train_users)


def test_case_study_on_cpu_uses_bfloat16_and_skips_four_workers_with_reason() -> None:
    resolved = {s.name: s for s in steps("case-study", CPU2)}
    amp = resolved["automatic mixed precision"]
    assert amp.overrides["precision"] == "mixed_bfloat16" and amp.skip is None
    assert any("bfloat16" in n for n in amp.notes)
    horovod = resolved["horovod 4 workers"]
    assert horovod.skip == "needs 4 workers; this machine has 2 CPU cores and no GPU"


def test_case_study_on_four_gpus_runs_every_step_as_published() -> None:
    resolved = steps("case-study", GPU4)
    assert all(s.skip is None for s in resolved)
    assert resolved[-1].overrides["workers"] == 4 and resolved[-1].overrides["engine"] == "horovod"
    assert resolved[3].overrides["precision"] == "mixed_float16"


def test_steps_after_a_skipped_one_build_on_the_last_step_that_ran() -> None:
    resolved = steps("attribution", Hardware(gpus=0, cores=1, horovod=False))
    parallel, xla = resolved[-2], resolved[-1]
    assert parallel.skip and xla.skip is None
    assert xla.overrides.get("workers", 1) == 1 and xla.overrides["xla"] is True


def test_batch_is_capped_on_small_data_and_the_cap_is_noted() -> None:
    larger = steps("attribution", GPU4, train_users=10_000)[2]
    assert larger.overrides["batch_size"] == 2_500
    assert "capped" in larger.notes[0]


def test_leave_one_out_reverts_one_switch_per_step() -> None:
    resolved = steps("leave-one-out", GPU4)
    full = resolved[0].overrides
    for step in resolved[1:]:
        changed = {k for k in full if step.overrides.get(k) != full[k]}
        assert len(changed) == 1, step.name


def test_misspelt_field_is_named_at_load(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = ""\n[baseline]\nbatchsize = 5\n')
    with pytest.raises(ValueError, match="batchsize"):
        Ladder.load(bad)
