"""The cost model's arithmetic on hand-computed steps, its refusals and the hardware descriptions."""

from pathlib import Path
from typing import Any

import pytest

from vaecf.config import ModelConfig, TrainConfig
from vaecf.costmodel import (
    PASS_BYTES,
    Hardware,
    HostCost,
    StepShape,
    allreduce_seconds,
    cpu_hardware,
    gemm_flops,
    load_device,
    memory_bytes,
    predict,
)
from vaecf.errors import VaecfError

HARDWARE = Path(__file__).resolve().parents[1] / "ablations" / "hardware"
# A DAE [10 -> 2 -> 10]: parameters 10*2 + 2 + 2*10 + 10 = 52.
DAE = ModelConfig(kind="dae", hidden=(), latent=2)
NO_HOST = HostCost(0.0, 0.0)
HUGE = 1e30


def shape(**kw: Any) -> StepShape:
    base: dict[str, Any] = {"batch": 4, "input": "sparse", "pipeline": "feed", "precision": "float32", "workers": 1,
            "n_items": 10, "nnz_per_user": 3.0, "model": DAE}
    return StepShape(**(base | kw))


def gpu(gemm: float = HUGE, memory: float = HUGE, host_link: float = HUGE, devices: int = 4) -> Hardware:
    return Hardware("test", "gpu", devices, {"float32": gemm, "mixed_float16": gemm}, memory, host_link,
                    link_bw=10.0, link_latency_s=0.5, sources={})


def test_a_gemm_bound_step_is_its_flops_over_the_rate() -> None:
    # Sparse DAE: the output layer's three GEMMs only, 3 x 2 x B x 2 x I = 3*2*4*2*10 = 480 FLOPs
    # (the sparse first layer is a memory part).
    step = shape()
    assert gemm_flops(step) == pytest.approx(480)
    p = predict(step, gpu(gemm=480.0), NO_HOST)
    assert p.parts["gemm"] == pytest.approx(1.0)
    assert p.seconds == pytest.approx(1.0, rel=1e-9)
    assert p.users_per_s == pytest.approx(4.0, rel=1e-9)
    # A dense input adds its first layer as a GEMM: forward and weight gradient, 4 B I h = 320.
    assert gemm_flops(shape(input="dense")) == pytest.approx(480 + 320)


def test_a_bandwidth_bound_step_is_its_bytes_over_the_bandwidth() -> None:
    # Users x items passes: 4 x 10 x 28 B; first layer: 3 x (4 x 3 nonzeros) x 2 x 4 B + 10 x 2 x 4 B;
    # Adam: 52 parameters x 28 B.
    bytes_ = memory_bytes(shape())
    assert bytes_ == {"elementwise": 1120, "first_layer": 288 + 80, "adam": 52 * 28}
    p = predict(shape(), gpu(memory=1.0), NO_HOST)
    assert p.seconds == pytest.approx(1120 + 368 + 1456, rel=1e-9)
    # Mixed precision adds the two casts of the users x items tensor (6 B each) and a weight cast (6 B).
    mixed = memory_bytes(shape(precision="mixed_float16"))
    assert mixed["elementwise"] == 4 * 10 * (28 + 12)
    assert mixed["adam"] == 52 * (28 + 6)
    assert PASS_BYTES[("dense", False)] > PASS_BYTES[("sparse", False)]


def test_feed_adds_the_host_and_tfdata_hides_the_shorter_side() -> None:
    host = HostCost(prep_s=5.0, overhead_s=0.25)
    feed = predict(shape(), gpu(gemm=480.0), host)  # device 1 s
    assert feed.seconds == pytest.approx(5.0 + 0.25 + 1.0, rel=1e-9)
    tfdata = predict(shape(pipeline="tfdata"), gpu(gemm=480.0), host)
    assert tfdata.seconds == pytest.approx(5.0 + 0.25, rel=1e-9)
    assert tfdata.visible["host"] == pytest.approx(4.0) and sum(tfdata.visible.values()) == pytest.approx(5.25)
    fast_host = predict(shape(pipeline="tfdata"), gpu(gemm=480.0), HostCost(0.5, 0.0))
    assert fast_host.seconds == pytest.approx(1.0, rel=1e-9) and fast_host.visible["host"] == 0.0


def test_transfer_counts_dense_and_sparse_batch_bytes() -> None:
    # Dense: 4 x 10 float32 = 160 B; sparse: 12 nonzeros x 20 B = 240 B; over 1 B/s.
    assert predict(shape(input="dense"), gpu(host_link=1.0), NO_HOST).parts["transfer"] == pytest.approx(160)
    assert predict(shape(), gpu(host_link=1.0), NO_HOST).parts["transfer"] == pytest.approx(240)


def test_ring_allreduce() -> None:
    assert allreduce_seconds(100.0, 4, 10.0, 0.5) == pytest.approx(2 * 3 / 4 * 100 / 10 + 2 * 3 * 0.5)
    assert allreduce_seconds(100.0, 1, 10.0, 0.5) == 0.0
    # Four workers: 52 float32 gradients = 208 B -> 2*3/4*208/10 + 2*3*0.5 = 31.2 + 3 = 34.2 s.
    p = predict(shape(workers=4), gpu(), NO_HOST)
    assert p.parts["allreduce"] == pytest.approx(34.2)
    assert p.global_batch == 16


def test_step_shape_of_a_training_config_is_per_worker() -> None:
    train = TrainConfig(batch_size=3072, workers=8, batch_scope="worker")
    assert StepShape.of(train, 20_108, 73.1).batch == 3072
    assert StepShape.of(train.with_overrides(batch_scope="global"), 20_108, 73.1).batch == 384


def test_refusals() -> None:
    with pytest.raises(VaecfError, match="4 GPU"):
        predict(shape(workers=8), gpu(), NO_HOST)
    cpu = Hardware("cpu", "cpu", 1, {"4,float32": 1.0}, 1.0, None, 1.0, 0.0, {})
    with pytest.raises(VaecfError, match="no GEMM rate for '8,float32'"):
        predict(shape(batch=8), cpu, NO_HOST)


def test_a_cpu_step_of_n_workers_takes_the_rates_of_a_world_of_n() -> None:
    # One process: 480 FLOPs at 480 FLOP/s. A world of 2: each worker's GEMMs at its own measured
    # rate (120), its XLA-compiled rate for an XLA step (60), and the all-reduce of 52 float32
    # gradients at the world's effective bandwidth: 2 x 1/2 x 208 B / 104 B/s = 2 s, no latency.
    probe = {"gemm_flops": {"4,float32": 480.0}, "memory_bw": HUGE,
             "worlds": {"2": {"gemm_flops": {"4,float32": 120.0, "4,float32,xla": 60.0}, "memory_bw": HUGE,
                              "allreduce_bw": 104.0}}}
    assert predict(shape(), cpu_hardware(probe, "cpu"), NO_HOST).seconds == pytest.approx(1.0)
    two = predict(shape(workers=2), cpu_hardware(probe, "cpu", 2), NO_HOST)
    assert two.parts["gemm"] == pytest.approx(4.0) and two.parts["allreduce"] == pytest.approx(2.0)
    assert two.global_batch == 8
    assert predict(shape(workers=2, xla=True), cpu_hardware(probe, "cpu", 2), NO_HOST).parts["gemm"] == \
        pytest.approx(8.0)
    with pytest.raises(VaecfError, match="rates measured with 1 worker"):
        predict(shape(workers=2), cpu_hardware(probe, "cpu"), NO_HOST)
    with pytest.raises(VaecfError, match="the probe has no world of 4 workers"):
        cpu_hardware(probe, "cpu", 4)


def test_a_description_number_without_a_source_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text('key = "x"\ncounts = [1]\n[memory_bw]\nvalue = 1e9\nsource = ""\n')
    with pytest.raises(VaecfError, match="memory_bw needs a numeric value and a non-empty source"):
        load_device(bad)


@pytest.mark.parametrize("path", sorted(HARDWARE.glob("*.toml")), ids=lambda p: p.stem)
def test_every_number_of_a_described_device_has_a_source(path: Path) -> None:
    device = load_device(path)  # refuses an unsourced number
    for key in ("memory_bw", "host_link_bw", "link_bw", "link_latency_s"):
        assert device[key]["source"]
    assert set(device["attainable"]) == {"gemm", "memory", "link"}
    assert "float32" in device["gemm_peak"] and "mixed_float16" in device["gemm_peak"]
