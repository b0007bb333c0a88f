"""A per-update cost model: seconds per training step of a configuration on a hardware description.

Why: a measured ladder says what the switches gave on *this* machine; the model says which part
of a step (host, transfer, GEMMs, memory-bound passes, all-reduce) each switch moves, so a
ladder can be projected onto hardware we do not have and checked against published figures.
Plain arithmetic, no TensorFlow: data in (a ``StepShape``, a ``Hardware``, the host's measured
``HostCost``), numbers out (``Prediction``).

Assumptions (each is a place where the model can be wrong; the held-out check names which):

1. Every part is a roofline: GEMM FLOPs over an attainable FLOP rate, or bytes over an
   attainable bandwidth. An attainable rate is a peak times a fraction, both from the hardware
   description (``ablations/hardware/*.toml``: the peak from a data sheet, the fraction from a
   published microbenchmark, a measurement, or marked as an assumption). On a GPU the rate does
   not depend on the shape (every GEMM here has a dimension of 20,108 and one of >= 500 users);
   on a CPU it is the probe's measured rate at the step's (per-worker batch, precision), and
   for an XLA step the rate of the same GEMMs compiled by XLA (``jit_compile``: XLA's CPU
   backend does not take oneDNN's path, so its rate is its own).
2. GEMMs: ``vaecf.flops.flops_per_user`` less its sparse first layer (a memory-bound gather,
   counted below), at the output GEMM's rate for every layer. A dense input adds the first
   layer as a GEMM: forward and weight gradient, ``4 B I h``.
3. Users x items passes (``B x I`` elements, bytes per element), counted from
   ``vaecf/kernels.py`` (sparse input) and ``vaecf/model.py`` (dense input); a GEMM's own reads
   and writes are inside its FLOP time. Sparse, ``_output_nll``: bias add 8, softmax 8 (one
   read, one write: a fused kernel that re-reads its row from cache), the scatter of the
   nonzeros into a copy of the probabilities 8, the bias gradient's read 4; with mixed
   precision also the logits' cast to float32 (2 + 4) and the gradient's cast back (4 + 2):
   28 B float32, 40 B mixed. Dense, autodiff of ``log_softmax(logits) * x``: bias 8,
   log-softmax 8, the product with x 12, its sum 4; backward the broadcast 4, the product's
   gradient 12, the log-softmax gradient 16, the bias gradient 4 (68 B), plus the first layer's
   L2 normalisation 12 and dropout 16 (96 B float32; mixed adds three casts, 2 + 4 or 4 + 2
   each: 114 B).
4. The sparse first layer: each nonzero reads one row of the weights forward, and one row of
   the upstream gradient and one row of the weight gradient backward (``3 nnz h 4`` bytes),
   plus the dense weight gradient written once (``I h 4``). Caches are ignored.
5. Adam: per parameter, gradient, weight and both moments read and weight and moments written,
   28 B; mixed precision adds a cast of every weight to the compute dtype each step (6 B).
   Layers other than the first and the last are small and their activations are ignored.
6. Host batch preparation (dense conversion or CSR slicing) and the per-step framework overhead
   are CPU work on any machine: measured on the machine at hand by a probe and given to the
   model as ``HostCost``; projecting onto a GPU server assumes its host CPU is as fast per core.
7. Host -> device transfer: a dense batch is ``B I 4`` bytes, a sparse one 20 bytes per nonzero
   (two int64 indices and a float32 value), over the host link; none on a CPU.
8. Overlap: with ``pipeline='feed'`` the step is host + overhead + transfer + device, in
   sequence; with ``tfdata``, prefetch overlaps the host's preparation and the transfer with
   the device's work: ``max(host, transfer, device) + overhead``. On a CPU there is no separate
   device: preparation and compute share the cores and are added under both pipelines.
9. Data parallel (N workers): each worker does the per-worker batch; then a ring all-reduce of
   the float32 gradients, ``2 (N-1)/N x bytes / link bandwidth + 2 (N-1) x latency``, not
   overlapped with the backward pass. On a CPU the N worker processes share the cores and the
   memory bus, so a step of N workers is predicted only from rates the probe measured in a world
   of N workers: each worker's GEMM rate and bandwidth with all N running at once (each on its
   share of the cores), and the all-reduce of the gradients over loopback, the world's own
   collective, as an effective bandwidth with no separate latency term. (Taking N times one
   process's time and the all-reduce at memory bandwidth predicted the committed 2-worker step
   1.8x too fast: the CPU check, ``results/projection/``.)
10. XLA on a GPU is not modelled: a step compiled by XLA is predicted as the same step without it
   (the fusion it may bring would remove users x items passes). On a CPU only its GEMM rate is
   (assumption 1); its passes are counted as without XLA. Nor is the CPU's bfloat16 substitute:
   projecting a CPU run onto a GPU without bfloat16 (V100) predicts its float16 step.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from vaecf.config import InputKind, ModelConfig, Pipeline, Precision, TrainConfig
from vaecf.errors import VaecfError
from vaecf.flops import flops_per_user

FLOAT32 = 4
SPARSE_BYTES_PER_NONZERO = 2 * 8 + 4
"""A nonzero on the wire: row and column as int64, the value as float32."""

PASS_BYTES: dict[tuple[InputKind, bool], int] = {
    ("sparse", False): 8 + 8 + 8 + 4,
    ("sparse", True): 8 + 8 + 8 + 4 + (2 + 4) + (4 + 2),
    ("dense", False): (8 + 8 + 12 + 4) + (4 + 12 + 16 + 4) + (12 + 16),
    ("dense", True): (8 + 8 + 12 + 4) + (4 + 12 + 16 + 4) + (12 + 16) + 3 * (2 + 4),
}
"""Bytes per users x items element per step, by (input, mixed precision): assumption 3."""

ADAM_BYTES = 4 * FLOAT32 + 3 * FLOAT32
WEIGHT_CAST_BYTES = FLOAT32 + 2

PARTS = ("host", "overhead", "transfer", "gemm", "elementwise", "first_layer", "adam", "allreduce")
"""Every part a prediction names, in the order a chart stacks them."""


@dataclass(frozen=True)
class StepShape:
    """What one update computes: the per-worker batch and the switches that change its cost."""

    batch: int
    """Users per worker per update."""
    input: InputKind
    pipeline: Pipeline
    precision: Precision
    workers: int
    n_items: int
    nnz_per_user: float
    model: ModelConfig = field(default_factory=ModelConfig)
    xla: bool = False

    @staticmethod
    def of(train: TrainConfig, n_items: int, nnz_per_user: float,
           model: ModelConfig | None = None) -> StepShape:
        return StepShape(train.global_batch // train.workers, train.input, train.pipeline, train.precision,
                         train.workers, n_items, nnz_per_user, model or ModelConfig(), train.xla)

    @property
    def mixed(self) -> bool:
        return self.precision != "float32"

    @property
    def parameters(self) -> int:
        shapes = self.model.encoder_shapes(self.n_items) + self.model.decoder_shapes(self.n_items)
        return sum(i * o + o for i, o in shapes)


@dataclass(frozen=True)
class HostCost:
    """The host's share of one step, measured by a probe on the machine at hand (assumption 6)."""

    prep_s: float
    """Preparing one batch of the step's input kind and per-worker batch size."""
    overhead_s: float
    """The framework's fixed cost of one step (dispatch, bookkeeping), at a negligible shape."""


@dataclass(frozen=True)
class Hardware:
    """Attainable rates of one machine; ``sources`` says where each number came from."""

    name: str
    kind: Literal["gpu", "cpu"]
    devices: int
    gemm_flops: dict[str, float]
    """Attainable FLOP/s by precision (GPU), or by ``"batch,precision"`` (CPU, measured)."""
    memory_bw: float
    host_link_bw: float | None
    """Host -> device bytes/s; None on a CPU."""
    link_bw: float
    """Per-device bytes/s one way between devices (a CPU: its memory)."""
    link_latency_s: float
    sources: dict[str, str]
    specs_only: bool = True
    """True when no rate was measured on the device itself."""
    concurrent: int = 1
    """CPU: the rates are one worker's, measured with this many workers running at once; only a step of
    as many workers is predicted from them (assumption 9)."""

    def gemm_rate(self, batch: int, precision: str, xla: bool = False) -> float:
        key = precision if self.kind == "gpu" else gemm_key(batch, precision, xla)
        if key not in self.gemm_flops:
            raise VaecfError(f"{self.name}: no GEMM rate for {key!r}; it has {', '.join(sorted(self.gemm_flops))}")
        return self.gemm_flops[key]


@dataclass(frozen=True)
class Prediction:
    """Each part's seconds, and the step's, combined as the configuration overlaps them."""

    parts: dict[str, float]
    seconds: float
    visible: dict[str, float]
    """The parts on the critical path (summing to ``seconds``): what a stacked chart draws."""
    global_batch: int

    @property
    def users_per_s(self) -> float:
        return self.global_batch / self.seconds


def gemm_flops(step: StepShape) -> float:
    """GEMM FLOPs of one worker's update (assumption 2)."""
    hidden = step.model.encoder_shapes(step.n_items)[0][1]
    sparse_first = 2 * 2 * step.nnz_per_user * hidden
    per_user = flops_per_user(step.n_items, step.model, step.nnz_per_user) - sparse_first
    if step.input == "dense":
        per_user += 2 * 2 * step.n_items * hidden
    return step.batch * per_user


def memory_bytes(step: StepShape) -> dict[str, float]:
    """Bytes moved by the memory-bound parts of one worker's update (assumptions 3 to 5)."""
    hidden = step.model.encoder_shapes(step.n_items)[0][1]
    first = 0.0
    if step.input == "sparse":
        first = 3 * step.batch * step.nnz_per_user * hidden * FLOAT32 + step.n_items * hidden * FLOAT32
    adam = step.parameters * (ADAM_BYTES + (WEIGHT_CAST_BYTES if step.mixed else 0))
    return {"elementwise": step.batch * step.n_items * PASS_BYTES[(step.input, step.mixed)],
            "first_layer": first, "adam": adam}


def transfer_bytes(step: StepShape) -> float:
    if step.input == "dense":
        return float(step.batch * step.n_items * FLOAT32)
    return step.batch * step.nnz_per_user * SPARSE_BYTES_PER_NONZERO


def allreduce_seconds(gradient_bytes: float, workers: int, link_bw: float, latency_s: float) -> float:
    """Ring all-reduce: ``2 (N-1)/N x bytes / bandwidth + 2 (N-1) x latency`` (0 for one worker)."""
    if workers == 1:
        return 0.0
    return 2 * (workers - 1) / workers * gradient_bytes / link_bw + 2 * (workers - 1) * latency_s


def predict(step: StepShape, hw: Hardware, host: HostCost) -> Prediction:
    """Seconds per update of ``step`` on ``hw``, as its parts (assumptions 1 to 9)."""
    if step.workers > hw.devices and hw.kind == "gpu":
        raise VaecfError(f"{hw.name} has {hw.devices} GPU(s); the step trains with {step.workers} workers")
    if hw.kind == "cpu" and step.workers != hw.concurrent:
        raise VaecfError(f"{hw.name}: rates measured with {hw.concurrent} worker(s) at once; the step trains "
                         f"with {step.workers} (a world of its own size is probed: python -m ablations rates)")
    parts = {"host": host.prep_s, "overhead": host.overhead_s,
             "transfer": 0.0 if hw.host_link_bw is None else transfer_bytes(step) / hw.host_link_bw,
             "gemm": gemm_flops(step) / hw.gemm_rate(step.batch, step.precision, step.xla)}
    parts |= {k: b / hw.memory_bw for k, b in memory_bytes(step).items()}
    parts["allreduce"] = allreduce_seconds(step.parameters * FLOAT32, step.workers, hw.link_bw, hw.link_latency_s)
    device = sum(parts[k] for k in ("gemm", "elementwise", "first_layer", "adam", "allreduce"))
    visible = dict(parts)
    if step.pipeline == "tfdata" and hw.kind == "gpu":  # prefetch hides the shorter of host, transfer, device
        slowest = max(parts["host"], parts["transfer"], device)
        seconds = slowest + parts["overhead"]
        for k in ("host", "transfer"):
            visible[k] = 0.0
        if slowest > device:
            visible["host" if parts["host"] >= parts["transfer"] else "transfer"] = slowest - device
    else:
        seconds = sum(parts.values())
    return Prediction(parts, seconds, visible, step.batch * step.workers)


# -- hardware descriptions ------------------------------------------------------------------------

def load_device(path: Path) -> dict[str, Any]:
    """A device description (TOML): every number is a table ``{value = ..., source = "..."}``."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise VaecfError(f"{path}: not a readable hardware description ({e})") from e
    for key, entry in sourced(data):
        if not isinstance(entry.get("value"), int | float) or not str(entry.get("source", "")).strip():
            raise VaecfError(f"{path}: {key} needs a numeric value and a non-empty source, got {entry}")
    return data


def sourced(data: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every ``{value, source}`` entry of a description, with its dotted key."""
    out = []
    for key, entry in data.items():
        name = f"{prefix}{key}"
        if isinstance(entry, dict) and ("value" in entry or "source" in entry):
            out.append((name, entry))
        elif isinstance(entry, dict):
            out.extend(sourced(entry, name + "."))
    return out


def gpu_hardware(device: dict[str, Any], count: int) -> Hardware:
    """``count`` of a described GPU: peaks times their attainable fractions."""
    if count not in device["counts"]:
        raise VaecfError(f"{device['key']}x{count}: described counts are {device['counts']}")
    frac = device["attainable"]
    gemm = {p: e["value"] * frac["gemm"]["value"] for p, e in device["gemm_peak"].items()}
    sources = {f"{k}": e["source"] for k, e in sourced(device)}
    return Hardware(name=f"{device['key']}x{count}", kind="gpu", devices=count, gemm_flops=gemm,
                    memory_bw=device["memory_bw"]["value"] * frac["memory"]["value"],
                    host_link_bw=device["host_link_bw"]["value"] * frac["link"]["value"],
                    link_bw=device["link_bw"]["value"] * frac["link"]["value"],
                    link_latency_s=device["link_latency_s"]["value"], sources=sources,
                    specs_only=bool(device.get("specs_only", True)))


def gemm_key(batch: int, precision: str, xla: bool = False) -> str:
    """How a probe names a measured CPU GEMM rate: ``"2100,float32"``, ``"1050,mixed_bfloat16,xla"``."""
    return f"{batch},{precision}" + (",xla" if xla else "")


def cpu_hardware(probe: dict[str, Any], name: str, workers: int = 1) -> Hardware:
    """This machine, from a probe record (``ablations.rates``): every rate measured.

    ``workers`` > 1: the rates the probe measured in a world of that many workers (assumption 9).
    """
    world = probe.get("worlds", {}).get(str(workers)) if workers > 1 else None
    if workers > 1 and world is None:
        raise VaecfError(f"{name}: the probe has no world of {workers} workers (it has "
                         f"{', '.join(sorted(probe.get('worlds', {}))) or 'none'}); rerun python -m ablations rates")
    rates = world or probe
    return Hardware(name=name, kind="cpu", devices=1, gemm_flops=dict(rates["gemm_flops"]),
                    memory_bw=rates["memory_bw"], host_link_bw=None,
                    link_bw=world["allreduce_bw"] if world else probe["memory_bw"],
                    link_latency_s=0.0, specs_only=False, concurrent=workers,
                    sources={"all": f"measured by the probe on {name}"
                             + (f" in a world of {workers} workers" if world else "")})
