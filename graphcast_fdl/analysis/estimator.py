"""Time and memory per phase of an experiment on named hardware.

`estimate(experiment, hardware, use_xla)` prices every phase of the schedule:
the analytic cost model (`cost_model`) gives FLOPs, bytes moved and memory per
device from closed-form graph sizes; a roofline over the hardware's peaks,
divided by the family's fitted efficiency (`calibration`), gives the step
time. With `use_xla`, XLA's own cost and memory analysis of the real
loss+grad program (lowered on abstract shapes, nothing allocated) is reported
beside it where the graph is small enough to build here.
"""

from __future__ import annotations

import dataclasses
import json

from graphcast_fdl.analysis import calibration
from graphcast_fdl.analysis import cost_model
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.analysis import spatial_cost
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.task import format_seconds
from graphcast_fdl.train.experiment import Experiment
from graphcast_fdl.train.experiment import phase_settings

GiB = 2**30
TIGHT_HEADROOM = 0.10  # below this fraction of device memory, call it tight


@dataclasses.dataclass
class PhaseEstimate:
  """One phase: how long it takes and what one device must hold.

  Sources: every field comes from the analytic model except `xla`, which
  holds XLA's compiled-program figures when available (`source` says which),
  and `xla_step_seconds`, the step priced from XLA's FLOPs and bytes (scan
  bodies times their trip counts) by `xla_priced_seconds`.
  `host_input_bytes_per_second` is what each host's loader must deliver
  (its devices' whole batches per step time, in `data.transfer_dtype`): a
  requirement.
  `spatial` is the devices sharing each example in the phase
  (`Phase.spatial`, else `mesh.spatial`).
  """

  name: str
  steps: int
  rollout_steps: int
  precision: str
  remat: str
  step_seconds: float
  duration_seconds: float
  device_hours: float
  flops_per_step: float
  bytes_per_step: float
  bound: str
  params_bytes: float
  optimizer_bytes: float
  gradient_bytes: float
  data_bytes: float
  activation_bytes: float
  temporary_bytes: float
  peak_bytes_per_device: float
  fits: bool
  headroom_bytes: float
  host_input_bytes_per_second: float = 0.0
  # The step's whole batch per device, wherever it waits (`data_bytes` is
  # its share in device memory, less with `remat.host_targets`/`host_inputs`).
  batch_bytes: float = 0.0
  source: str = "analytic"
  xla: dict | None = None
  xla_step_seconds: float | None = None
  # The terms of `xla_step_seconds` (`xla_time_terms`): seconds of the
  # compiler's FLOPs at peak, of its bytes at HBM bandwidth, of the bytes
  # crossing the host link; and the binding one.
  xla_terms: dict | None = None
  # Forward FLOPs of one rollout step (analytic): the compiler's FLOPs per
  # rollout step over it are the forward passes it runs (recomputation).
  forward_flops_per_rollout_step: float = 0.0
  # Halo exchange of a space-split example (`spatial_cost`): bytes each
  # device sends per step and seconds, per stage; included in step_seconds.
  spatial: int = 1
  exchange_bytes_per_step: float = 0.0
  exchange_seconds: dict | None = None
  cut_fraction: float = 0.0


@dataclasses.dataclass
class Estimate:
  """Every phase of one experiment on one hardware kind."""

  experiment: str
  hardware: str
  num_devices: int
  batch_per_device: int
  memory_bytes_per_device: float
  efficiency: float
  efficiency_source: str
  phases: list
  total_duration_seconds: float
  total_device_hours: float
  fits: bool
  notes: list
  sources: dict
  # Devices sharing each example (mesh.spatial; phases may differ).
  spatial: int = 1
  cut_fraction: float = 0.0

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self, indent: int | None = 2) -> str:
    return json.dumps(self.to_dict(), indent=indent)


def remat_label(remat: RematConfig, edge_block_size: int | None) -> str:
  parts = []
  if remat.rollout_step:
    parts.append("step")
  if remat.processor_every_k:
    parts.append(f"proc/{remat.processor_every_k}")
  if remat.encoder_decoder:
    parts.append("enc+dec")
  if remat.rollout_segment:
    parts.append(f"seg/{remat.rollout_segment}")
  if remat.grid_block_size:
    parts.append(f"grid {remat.grid_block_size}")
  if edge_block_size:
    parts.append(f"blocks {edge_block_size}")
  return ",".join(parts) or "none"


def _allreduce_seconds(grad_bytes: float, n: int, hw: hardware_lib.Hardware) -> float:
  """Ring all-reduce of the float32 gradients across `n` devices."""
  if n <= 1 or not hw.interconnect_bandwidth:
    return 0.0
  return 2 * grad_bytes * (n - 1) / n / hw.interconnect_bandwidth


def step_seconds(
    cost: cost_model.StepCost,
    precision: str,
    hw: hardware_lib.Hardware,
    num_devices: int,
    efficiency: float,
) -> tuple[float, str]:
  """Roofline time / efficiency + gradient all-reduce; and the binding term."""
  compute = cost.flops / hw.peak(precision)
  memory = cost.bytes_accessed / hw.memory_bandwidth
  roofline = max(compute, memory)
  seconds = roofline / efficiency + _allreduce_seconds(cost.gradient_bytes, num_devices, hw)
  return seconds, ("compute" if compute >= memory else "memory")


def priced_precision(precision: str, hw: hardware_lib.Hardware) -> str:
  """The dtype a step is priced at: where bfloat16 matmuls run in float32
  (their operands upcast), time and memory are float32's (XLA:CPU's own
  figures at 1 deg are ~2x the bfloat16 analytic ones and match float32's)."""
  if hw.upcasts_bfloat16 and precision == "bfloat16":
    return "float32"
  return precision


def model_step_seconds(
    model,
    task,
    hardware: str,
    *,
    rollout_steps: int = 1,
    batch_per_device: int = 1,
    efficiency: float | None = None,
) -> float:
  """One device's train step of `model` on `hardware`, priced as `estimate`
  prices a phase (for benchmarks that compare single steps)."""
  hw = hardware_lib.get(hardware)
  eff = calibration.efficiency(hw.family) if efficiency is None else efficiency
  cost = cost_model.step_cost(
      model,
      task,
      rollout_steps=rollout_steps,
      batch_per_device=batch_per_device,
      precision=priced_precision(model.precision, hw),
      retention=hw.retention,
  )
  return step_seconds(cost, model.precision, hw, 1, eff)[0]


def num_devices_of(experiment: Experiment) -> int:
  return experiment.mesh.num_devices or 1


def estimate(
    experiment: Experiment,
    hardware: str = "tpu_v4",
    use_xla: bool = False,
    efficiency: float | None = None,
    progress=None,
    xla_cached_only: bool = False,
) -> Estimate:
  """Prices every phase of `experiment` on `hardware` (a `hardware` key).

  Args:
    experiment: the built experiment; nothing of its size is allocated.
    hardware: key of `hardware.TABLE` or "cpu" (this machine).
    use_xla: also compile the real train step on abstract shapes and report
      XLA's cost and memory analysis beside the analytic figures: XLA:TPU
      for that chip on TPU hardware (needs libtpu; `fits` is then the
      compiler's verdict), else this machine's backend.
    efficiency: override the family's fitted factor (used when refitting).
    progress: called with a line before and after each compile.
    xla_cached_only: with `use_xla`, take only figures already in the
      on-disk cache (compile nothing; the others stay analytic).

  Raises:
    xla_cost.TpuCompilerMissing: `use_xla` on TPU hardware without libtpu.
  """
  hw = hardware_lib.get(hardware)
  model, task = experiment.model, experiment.task
  n = num_devices_of(experiment)
  batch = max(1, experiment.data.global_batch_size * experiment.mesh.spatial // n)
  splits = {}  # spatial split -> its part sizes, for the note
  eff = calibration.efficiency(hw.family) if efficiency is None else efficiency
  notes = []
  if hw.family == "gpu":
    notes.append("GPU efficiency is the TPU factor (no published GPU figure).")
  precisions = [phase_settings(experiment, p).model.precision for p in experiment.schedule.phases]
  if any(priced_precision(p, hw) != p for p in precisions):
    notes.append(f"bfloat16 runs as float32 on {hw.name} (matmuls upcast): " "priced as float32.")
  if experiment.mesh.num_devices is None:
    notes.append("mesh.num_devices unset: priced for 1 device.")
  xla_cache, phases = {}, []
  for span in experiment.schedule.spans():
    phase = span.phase
    resolved = phase_settings(experiment, phase)
    remat, precision = resolved.model.remat, resolved.model.precision
    spatial = resolved.mesh.spatial
    # Examples per device, or per group of `spatial` devices sharing them.
    phase_batch = max(1, experiment.data.global_batch_size * spatial // n)
    parts = splits.setdefault(spatial, spatial_cost.part_sizes(model, spatial))
    part_model, part_remat = spatial_cost.part_settings(model, remat, spatial)
    cost = cost_model.step_cost(
        part_model,
        task,
        rollout_steps=phase.rollout_steps,
        batch_per_device=phase_batch,
        num_devices=n,
        shard_params=experiment.mesh.shard_params,
        remat=part_remat,
        precision=priced_precision(precision, hw),
        retention=hw.retention,
        graph=parts,
        transfer_dtype=experiment.data.transfer_dtype,
    )
    seconds, bound = step_seconds(cost, precision, hw, n, eff)
    halo = spatial_cost.exchange(
        model,
        parts,
        remat=remat,
        precision_bytes=cost_model.DTYPE_BYTES[priced_precision(precision, hw)],
        rollout_steps=phase.rollout_steps,
        batch=phase_batch,
        bandwidth=hw.interconnect_bandwidth,
    )
    seconds += halo.seconds
    peak = cost.peak_bytes
    entry = PhaseEstimate(
        name=phase.name,
        steps=phase.num_steps,
        rollout_steps=phase.rollout_steps,
        precision=precision,
        remat=remat_label(remat, model.edge_block_size),
        step_seconds=seconds,
        duration_seconds=seconds * phase.num_steps,
        device_hours=seconds * phase.num_steps * n / 3600,
        flops_per_step=cost.flops,
        bytes_per_step=cost.bytes_accessed,
        bound=bound,
        params_bytes=cost.param_bytes,
        optimizer_bytes=cost.optimizer_bytes,
        gradient_bytes=cost.gradient_bytes,
        data_bytes=cost.data_bytes,
        activation_bytes=cost.activation_bytes,
        temporary_bytes=cost.temporary_bytes,
        peak_bytes_per_device=peak,
        fits=peak <= hw.memory_bytes,
        headroom_bytes=hw.memory_bytes - peak,
        host_input_bytes_per_second=(min(n, hw.devices_per_host) * cost.batch_bytes / seconds),
        batch_bytes=cost.batch_bytes,
        spatial=spatial,
        exchange_bytes_per_step=halo.bytes,
        exchange_seconds=halo.seconds_per_stage if spatial > 1 else None,
        cut_fraction=getattr(parts, "cut_fraction", 0.0),
        forward_flops_per_rollout_step=cost.flops
        / (phase.rollout_steps * (1 + cost_model.BACKWARD_FACTOR + cost.recompute_fraction)),
    )
    if use_xla:
      key = (phase.rollout_steps, remat, precision)
      if key not in xla_cache:
        program = dict(
            rollout_steps=phase.rollout_steps,
            remat=remat,
            precision=precision,
            batch_per_device=batch,
            hardware=hardware if hardware in xla_cost.TPU_TARGETS else None,
        )
        if xla_cached_only:
          xla_cache[key] = xla_cost.cached(experiment, **program) or xla_cost.XlaCost(
              False, "not in the cache of compiled figures"
          )
        else:
          xla_cache[key] = xla_cost.analyze(experiment, progress=progress, **program)
      result = xla_cache[key]
      entry.xla = result.to_dict()
      entry.source = (
          "analytic + xla" if result.available else ("analytic (xla: " + result.reason + ")")
      )
      if result.fits is not None:  # the compiler's verdict wins
        entry.fits = result.fits and result.peak_bytes <= hw.memory_bytes
        entry.headroom_bytes = hw.memory_bytes - result.peak_bytes
        entry.source = "xla:tpu decides fits"
      elif result.available and result.peak_bytes is not None:
        # The local backend's compiled peak, against this hardware's memory.
        entry.fits = result.peak_bytes <= hw.memory_bytes
        entry.headroom_bytes = hw.memory_bytes - result.peak_bytes
        entry.source = f"xla:{result.backend} decides fits"
    phases.append(entry)
  if use_xla:
    price_from_xla(phases, hw, n)
  total = sum(p.duration_seconds for p in phases)
  for spatial, parts in splits.items():
    if spatial == 1:
      continue
    notes.append(
        f"each example split over {spatial} devices (latitude bands): per device "
        f"{parts.grid_nodes:,} grid rows, {parts.mesh_nodes:,} mesh rows, "
        f"{parts.grid2mesh_edges + parts.mesh_edges + parts.mesh2grid_edges:,} edges; halo blocks "
        f"grid2mesh {parts.grid2mesh_halo:,}, mesh {parts.mesh_halo:,}, mesh2grid "
        f"{parts.mesh2grid_halo:,} rows; {parts.cut_fraction:.3f} of edges cut. Params, "
        "optimiser state and gradients stay whole on every device."
    )
  # Headroom is the compiler's where it decided, else the analytic one.
  worst = min(phases, key=lambda p: p.headroom_bytes)
  too_big = [p.name for p in phases if not p.fits]
  if too_big:
    notes.append(
        f"does not fit {hw.memory_bytes / GiB:.0f} GiB: "
        f"{', '.join(too_big)} (largest needs "
        f"{(hw.memory_bytes - worst.headroom_bytes) / GiB:.1f} GiB); "
        "try --config=fiddler:fit_memory() or --fit"
    )
  if worst.fits and worst.headroom_bytes < TIGHT_HEADROOM * hw.memory_bytes:
    notes.append(
        f"tight: phase {worst.name} leaves " f"{worst.headroom_bytes / GiB:.1f} GiB headroom"
    )
  return Estimate(
      experiment=experiment.name,
      hardware=hw.name,
      num_devices=n,
      batch_per_device=batch,
      memory_bytes_per_device=hw.memory_bytes,
      efficiency=eff,
      efficiency_source=calibration.EFFICIENCY_SOURCE.get(hw.family, ""),
      phases=phases,
      total_duration_seconds=total,
      total_device_hours=total * n / 3600,
      fits=all(p.fits for p in phases),
      notes=notes,
      spatial=experiment.mesh.spatial,
      sources={
          "hardware": hw.source,
          "time": "analytic roofline max(FLOPs/peak, bytes/bandwidth) / "
          "efficiency + gradient all-reduce + halo exchange of a space-split example "
          "(sent bytes / one-way interconnect bandwidth, not overlapped); steps only (not "
          "compilation, evaluation, checkpoints or input stalls)",
          "memory": "analytic: params + AdamW state + grads + batch + "
          "activations saved under the remat policy + largest "
          "temporary",
          "input": "batch bytes each host's loader must deliver per "
          "second to keep its devices busy (a requirement; "
          "benchmarks/data_pipeline.py measures our loader)",
          "xla": "the trainer's jitted train step (loss+grad+AdamW, the "
          "config's shardings) .lower(abstract shapes).compile(): "
          "memory_analysis / cost_analysis per device (scan bodies x "
          "rollout); s/step xla: their FLOPs and bytes on the roofline with "
          "the XLA-priced factor",
      },
  )


def xla_time_terms(
    flops: float,
    bytes_accessed: float,
    host_bytes: float,
    precision: str,
    hw: hardware_lib.Hardware,
) -> dict:
  """Seconds of each resource a compiled step uses, at its peak: FLOPs on
  the matrix units, bytes through HBM, bytes over the host link."""
  host = host_bytes / hw.host_link_bandwidth if hw.host_link_bandwidth else 0.0
  terms = {
      "flops": flops / hw.peak(precision),
      "bytes": bytes_accessed / hw.memory_bandwidth,
      "host": host,
  }
  return terms


def xla_priced_seconds(
    flops: float,
    bytes_accessed: float,
    gradient_bytes: float,
    precision: str,
    hw: hardware_lib.Hardware,
    num_devices: int,
    efficiency: float | None = None,
    host_bytes: float = 0.0,
) -> tuple[float, dict]:
  """A step priced from the compiler's FLOPs and bytes: the roofline (max of
  FLOP and HBM-byte time) over the family's XLA-priced factor
  (`calibration.XLA_EFFICIENCY`, fitted to one published figure); the host
  link's time where it is longer (its copies are asynchronous, so they
  overlap the device's work); plus the gradient all-reduce. Returns the
  seconds and the terms with the binding one (`bound`)."""
  eff = calibration.xla_efficiency(hw.family) if efficiency is None else efficiency
  terms = xla_time_terms(flops, bytes_accessed, host_bytes, precision, hw)
  device = max(terms["flops"], terms["bytes"]) / eff
  bound = "host" if terms["host"] > device else max(("flops", "bytes"), key=terms.get)
  seconds = max(device, terms["host"]) + _allreduce_seconds(gradient_bytes, num_devices, hw)
  return seconds, dict(terms, bound=bound)


def take_recorded_xla(experiment: Experiment, est: Estimate) -> Estimate:
  """Phases without cached XLA:TPU figures take the recorded ones
  (`calibration.XLA_TPU_COSTS`) of the experiment's config, rollout and
  policy (`xla["recorded"]` names the compile); price with `price_from_xla`."""
  for span, p in zip(experiment.schedule.spans(), est.phases):
    if p.xla and p.xla.get("flops") and p.xla.get("bytes_weighted"):
      continue
    remat = phase_settings(experiment, span.phase).model.remat
    point = calibration.compiled_cost(experiment.name, p.rollout_steps, remat)
    if point is not None:
      p.xla = dict(
          available=True,
          backend="tpu",
          flops=point.flops,
          bytes_accessed=point.bytes_accessed,
          host_transfer_bytes=point.host_bytes,
          loops_weighted=True,
          bytes_weighted=True,
          recorded=point.source,
      )
  return est


def price_from_xla(
    phases: list, hw: hardware_lib.Hardware, n: int, efficiency: float | None = None
) -> None:
  """Sets `xla_step_seconds` and `xla_terms` of each phase from its compiled
  figures (loop bodies times their trips: figures cached before `hlo_loops`
  weighed bytes by their own loops are not used); a phase whose compile ran
  out of memory (no cost analysis) takes per-rollout-step figures of compiled
  rollouts of the same policy and precision (a rollout of 2+ steps is one
  scanned step): linear in the rollout length between the nearest shorter
  and longer ones, else the nearest one's, times its own rollout length. The host link carries the
  step's batch (`data_bytes`) and the compiler's host<->device copies (the
  rollout's offloaded frames and host-resident targets)."""
  compiled = [p for p in phases if p.xla and p.xla.get("flops") and p.xla.get("bytes_weighted")]
  fields = ("flops", "bytes_accessed", "host_transfer_bytes")
  per_step = lambda q, f: (q.xla.get(f) or 0.0) / q.rollout_steps
  for p in phases:
    if p in compiled:
      figures = {f: per_step(p, f) for f in fields}
    else:
      same = [
          q
          for q in compiled
          if q.remat == p.remat
          and q.precision == p.precision
          and (q.rollout_steps > 1) == (p.rollout_steps > 1)
      ]
      below = max(
          (q for q in same if q.rollout_steps < p.rollout_steps),
          key=lambda q: q.rollout_steps,
          default=None,
      )
      above = min(
          (q for q in same if q.rollout_steps > p.rollout_steps),
          key=lambda q: q.rollout_steps,
          default=None,
      )
      if below is None and above is None:
        continue
      if below is None or above is None:
        figures = {f: per_step(below or above, f) for f in fields}
      else:  # per-step figures linear in the rollout length between the two
        w = (p.rollout_steps - below.rollout_steps) / (above.rollout_steps - below.rollout_steps)
        figures = {f: (1 - w) * per_step(below, f) + w * per_step(above, f) for f in fields}
    r = p.rollout_steps
    p.xla_step_seconds, p.xla_terms = xla_priced_seconds(
        figures["flops"] * r,
        figures["bytes_accessed"] * r,
        p.gradient_bytes,
        p.precision,
        hw,
        n,
        efficiency,
        host_bytes=p.data_bytes + figures["host_transfer_bytes"] * r,
    )


def xla_forward_passes(p: PhaseEstimate) -> float | None:
  """The compiler's FLOPs per rollout step over one analytic forward pass:
  forward + backward (2) + what it recomputes (checkpoints, and its own
  rematerialisation); None without compiled FLOPs."""
  if not (p.xla and p.xla.get("flops") and p.forward_flops_per_rollout_step):
    return None
  return p.xla["flops"] / p.rollout_steps / p.forward_flops_per_rollout_step


def _passes(p: PhaseEstimate) -> str:
  passes = xla_forward_passes(p)
  return "-" if passes is None else f"{passes:.2f}"


def format_table(est: Estimate) -> str:
  """The human-readable table `estimate` prints."""
  gib = lambda b: f"{b / GiB:.2f}"
  per = "device" if est.spatial == 1 else f"group of {est.spatial} devices (space split)"
  lines = [
      f"experiment {est.experiment} on {est.num_devices} x {est.hardware} "
      f"({gib(est.memory_bytes_per_device)} GiB each), {est.batch_per_device} "
      f"example(s) per {per}; efficiency {est.efficiency:.3g} "
      f"({est.efficiency_source})",
      "",
      f"{'phase':16s} {'steps':>8s} {'roll':>4s} {'spc':>3s} {'s/step':>8s} {'duration':>9s}"
      f" {'dev-hours':>10s} {'bound':>7s} {'in GB/s':>7s} | {'params':>6s} {'optim':>6s}"
      f" {'grads':>6s} {'batch':>6s} {'activ':>6s} {'temps':>6s} {'peak':>6s}"
      f" {'fits':>4s}  remat / source",
  ]
  for p in est.phases:
    lines.append(
        f"{p.name:16s} {p.steps:8d} {p.rollout_steps:4d} {p.spatial:3d} {p.step_seconds:8.3g}"
        f" {format_seconds(p.duration_seconds):>9s} {p.device_hours:10.4g}"
        f" {p.bound:>7s} {p.host_input_bytes_per_second / 1e9:7.2f}"
        f" | {gib(p.params_bytes):>6s} {gib(p.optimizer_bytes):>6s}"
        f" {gib(p.gradient_bytes):>6s} {gib(p.data_bytes):>6s}"
        f" {gib(p.activation_bytes):>6s} {gib(p.temporary_bytes):>6s}"
        f" {gib(p.peak_bytes_per_device):>6s} {'yes' if p.fits else 'NO':>4s}"
        f"  {p.remat} / {p.source}"
    )
  lines.append(
      f"{'total':16s} {sum(p.steps for p in est.phases):8d} {'':4s} {'':3s} {'':8s}"
      f" {format_seconds(est.total_duration_seconds):>9s}"
      f" {est.total_device_hours:10.4g}"
  )
  split = [p for p in est.phases if p.spatial > 1]
  if split:
    lines += [
        "",
        "halo exchange of a space-split example, per device and step (in s/step):",
        f"{'phase':16s} {'split':>5s} {'cut':>5s} {'sent MiB':>9s} {'encoder s':>10s}"
        f" {'processor s':>11s} {'decoder s':>10s} {'share':>6s}",
    ]
    for p in split:
      x = p.exchange_seconds
      lines.append(
          f"{p.name:16s} {p.spatial:5d} {p.cut_fraction:5.3f}"
          f" {p.exchange_bytes_per_step / 2**20:9.1f} {x['encoder']:10.3g}"
          f" {x['processor']:11.3g} {x['decoder']:10.3g}"
          f" {sum(x.values()) / p.step_seconds:6.1%}"
      )
  xla_rows = [p for p in est.phases if p.xla and p.xla.get("available")]
  if xla_rows:
    num = lambda v: "n/a" if v is None else f"{v:10.3g}"
    lines += [
        "",
        f"XLA:{xla_rows[0].xla['backend'].upper()} (the compiled "
        f"train step; {xla_rows[0].xla['devices']}) vs analytic, per "
        "device and step:",
        f"{'phase':16s} {'FLOP xla':>10s} {'FLOP ana':>10s} {'bytes xla':>10s}"
        f" {'bytes ana':>10s} {'temp GiB xla':>12s} {'act+tmp ana':>11s}"
        f" {'peak xla':>9s} {'peak ana':>9s} {'s/step xla':>10s} {'bound':>5s}"
        f" {'fwd/step':>8s} {'compile':>8s}",
    ]
    for p in xla_rows:
      x = p.xla
      verdict = (
          ""
          if x.get("fits") is None
          else ("  fits" if x["fits"] else "  DOES NOT FIT: " + x["reason"])
      )
      lines.append(
          f"{p.name:16s} {num(x['flops']):>10s} {p.flops_per_step:10.3g}"
          f" {num(x['bytes_accessed']):>10s} {p.bytes_per_step:10.3g}"
          f" {gib(x['temp_bytes']):>12s}"
          f" {gib(p.activation_bytes + p.temporary_bytes):>11s}"
          f" {gib(x['peak_bytes']):>9s} {gib(p.peak_bytes_per_device):>9s}"
          f" {num(p.xla_step_seconds):>10s}"
          f" {(p.xla_terms or {}).get('bound', '-'):>5s} {_passes(p):>8s}"
          f" {x['compile_seconds']:7.0f}s{' (cached)' if x.get('cached') else ''}"
          f"{verdict}"
      )
  lines += [
      "",
      "memory columns: GiB per device; peak = their sum. in GB/s: "
      "input each host must load per second",
  ]
  if xla_rows:
    lines.append(
        "xla columns: bound = the binding term of s/step xla (flops, bytes: HBM, host: the"
        " host link); fwd/step = the compiler's FLOPs per rollout step / one analytic forward"
        " pass (forward + backward + recomputation)"
    )
  lines += [f"source of {k}: {v}" for k, v in est.sources.items()]
  lines += [f"note: {n}" for n in est.notes]
  headroom = min(p.headroom_bytes for p in est.phases)
  lines.append(
      f"fits: {'yes' if est.fits else 'NO'}, smallest headroom "
      f"{headroom / GiB:.2f} GiB of {gib(est.memory_bytes_per_device)}"
  )
  return "\n".join(lines)
