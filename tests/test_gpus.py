"""Each child's GPUs from the environment alone: the first of those allowed, or the one a scheduler gave."""

import pytest

from vaecf.gpus import VISIBLE, assigned_one, first, visible


@pytest.mark.parametrize(("value", "ids"), [(None, None), ("", []), ("-1", []), ("0,1,2", ["0", "1", "2"]),
                                            ("3, 5", ["3", "5"]), ("2,-1,4", ["2"]),
                                            ("GPU-aa11,GPU-bb22", ["GPU-aa11", "GPU-bb22"])])
def test_visible_reads_cuda_visible_devices_as_cuda_does(value: str | None, ids: list[str] | None) -> None:
    assert visible({} if value is None else {VISIBLE: value}) == ids


def test_a_child_gets_the_first_gpus_this_process_may_use() -> None:
    assert first({}, 1)[VISIBLE] == "0"
    assert first({}, 2)[VISIBLE] == "0,1"
    assert first({VISIBLE: "4,6,7"}, 2)[VISIBLE] == "4,6"
    assert first({VISIBLE: "-1"}, 1)[VISIBLE] == "-1"  # no GPU stays no GPU
    assert first({"OTHER": "x"}, 1)["OTHER"] == "x"


def test_a_scheduler_given_gpu_is_one_visible_id() -> None:
    assert assigned_one({VISIBLE: "5"})
    assert not assigned_one({}) and not assigned_one({VISIBLE: "0,1"}) and not assigned_one({VISIBLE: "-1"})
