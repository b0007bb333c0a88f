"""Ladders resolve into TrainConfig steps for the hardware at hand; bad files are named precisely."""

import pytest

from ablations.ladder import BUDGETS, PAPER_CODE_PATH, Hardware, Ladder, LadderError, resolve
from vaecf.config import TrainConfig

CPU2 = Hardware(gpus=0, cores=2, horovod=False)
GPU4 = Hardware(gpus=4, cores=32, horovod=True)


def steps(name: str, hardware: Hardware, train_users: int = 200_000):
    return resolve(Ladder.load(name), hardware, BUDGETS["quick"], train_users)


def test_case_study_on_cpu_uses_bfloat16_and_skips_four_workers_with_reason() -> None:
    resolved = {s.name: s for s in steps("case-study", CPU2)}
    amp = resolved["automatic mixed precision"]
    assert amp.train.precision == "mixed_bfloat16" and amp.skip is None
    assert any("bfloat16" in n for n in amp.notes)
    assert resolved["horovod 4 workers"].skip == "needs 4 workers; this machine has 2 CPU cores and no GPU"


def test_case_study_horovod_keeps_each_workers_batch_as_the_talk_did() -> None:
    horovod = steps("case-study", GPU4, train_users=1_000_000)[-1]
    assert horovod.skip is None and horovod.train.engine == "horovod"
    assert horovod.train.batch_size == 24_576 and horovod.train.global_batch == 4 * 24_576
    assert horovod.train.lr == TrainConfig().lr  # the talk's rule: the learning rate is not changed


def test_attribution_splits_data_parallel_by_global_batch() -> None:
    parallel = next(s for s in steps("attribution", GPU4) if s.name == "data parallel x2")
    assert parallel.train.workers == 2 and parallel.train.global_batch == parallel.train.batch_size


def test_large_batch_recipe_rescales_the_baselines_schedule_and_the_naive_step_does_not() -> None:
    by_name = {s.name: s.train for s in steps("attribution", GPU4)}
    naive, recipe = by_name["larger batch"], by_name["large-batch recipe"]
    assert naive.batch_size == recipe.batch_size == 24_576
    assert naive.lr == 1e-3 and naive.total_anneal_steps == 200_000
    assert recipe.lr == pytest.approx(1e-3 * (24_576 / 500) ** 0.5)
    assert recipe.total_anneal_steps == round(200_000 * 500 / 24_576)


def test_steps_after_a_skipped_one_build_on_the_last_step_that_ran() -> None:
    resolved = steps("attribution", Hardware(gpus=0, cores=1, horovod=False))
    parallel, xla = resolved[-2], resolved[-1]
    assert parallel.skip and xla.skip is None
    assert xla.train.workers == 1 and xla.train.xla is True


def test_batch_is_capped_on_small_data_the_cap_is_noted_and_the_recipe_follows_the_cap() -> None:
    by_name = {s.name: s for s in steps("attribution", GPU4, train_users=10_000)}
    larger, recipe = by_name["larger batch"], by_name["large-batch recipe"]
    assert larger.train.batch_size == 2_100 and "capped to 2,100" in larger.notes[0]
    assert recipe.train.lr == pytest.approx(1e-3 * (2_100 / 500) ** 0.5)


def test_the_baseline_is_the_original_code_path() -> None:
    assert steps("attribution", CPU2)[0].train == PAPER_CODE_PATH


def test_speed_and_maths_keys_tell_what_can_be_shared() -> None:
    by_name = {s.name: s for s in steps("attribution", GPU4)}
    assert by_name["baseline"].maths_key == by_name["sparse input"].maths_key  # same function, another path
    assert by_name["baseline"].speed_key != by_name["sparse input"].speed_key
    assert by_name["larger batch"].speed_key == by_name["large-batch recipe"].speed_key  # same cost
    assert by_name["larger batch"].maths_key != by_name["large-batch recipe"].maths_key


def test_fp16_gradients_are_a_step_of_their_own_and_keys_without_compression_stay_as_they_were() -> None:
    by_name = {s.name: s for s in steps("multihost", CPU2)}
    parallel, fp16 = by_name["data parallel x2"], by_name["fp16 gradients"]
    assert fp16.train.compression == "fp16" and fp16.train.workers == 2 and fp16.skip is None
    assert fp16.speed_key == parallel.speed_key + ",compression=fp16"  # costs and computes otherwise
    assert fp16.maths_key == parallel.maths_key + ",compression=fp16"
    assert "compression" not in parallel.speed_key + parallel.maths_key  # as records made before it name them


@pytest.mark.parametrize("text, message", [
    ('name = "b"\ndescription = ""\n[baseline]\nbatchsize = 5\n', "batchsize"),
    ('name = "b"\ndescription = ""\nqualty = 1\n[baseline]\n', "unknown field(s) qualty"),
    ('name = "b"\ndescription = ""\n[baseline]\n[[steps]]\nname = "x"\nsett = {}\n', "steps[0]: unknown field(s) sett"),
    ('name = "b"\ndescription = ""\n[baseline]\n[[steps]]\nname = "x"\nrecipe = "magic"\n', "recipe = 'magic'"),
    ('name = "b"\ndescription = ""\nmode = "sideways"\n[baseline]\n', "mode = 'sideways'"),
    ('name = "b"\ndescription = ""\n[baseline\n', "not valid TOML"),
])
def test_bad_ladder_files_are_named_with_the_field(tmp_path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(LadderError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Ladder.load(bad)


def test_unknown_ladder_lists_the_known_ones() -> None:
    with pytest.raises(LadderError, match="attribution"):
        Ladder.load("no-such-ladder")


def test_the_command_line_answers_bad_input_in_one_line(tmp_path, capsys) -> None:
    from ablations.__main__ import main

    (tmp_path / "file").write_text("")
    assert main(["run", "--ladder", "no-such-ladder"]) == 2
    assert main(["plot", str(tmp_path)]) == 2
    assert main(["run", "--ladder", "attribution", "--budget", "smoke", "--out", str(tmp_path / "file" / "run"),
                 "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("ablations: error:") for line in err)
    assert "no-such-ladder" in err[0] and "not a ladder run folder" in err[1] and "file" in err[2]
