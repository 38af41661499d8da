"""Search memory knobs for the cheapest settings that fit a memory budget.

Tries every remat policy (including rollout segments and grid-node blocks),
edge block size, precision, per-device batch and spatial split (devices
sharing each example, `mesh.spatial`),
prices the whole schedule with the analytic estimator, keeps the settings
whose every phase fits `memory_bytes`, and ranks them by the schedule's wall
time (what a user waits for; the schedule's step counts stay as configured).
Each result carries the config fields it changes, as data; `estimate --fit`
renders them as `--config` flags.
"""

from __future__ import annotations

import dataclasses
import itertools

from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.analysis import sizes
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.train.experiment import Experiment

# What a recomputed rollout step keeps and where (`model/rollout.py`):
# its window (default), its prediction, offloaded to host memory, with the
# targets (and then the input frames) in host memory too. Only with
# per-step remat and no segments.
ROLLOUT_KNOBS = (
    {},
    {"host_targets": True},
    {"rollout_saves": "prediction"},
    {"rollout_saves": "prediction", "offload_rollout": True},
    {"rollout_saves": "prediction", "offload_rollout": True, "host_targets": True},
    {
        "rollout_saves": "prediction",
        "offload_rollout": True,
        "host_targets": True,
        "host_inputs": True,
    },
)
REMAT_POLICIES = tuple(
    RematConfig(
        rollout_step=s,
        processor_every_k=k,
        encoder_decoder=e,
        rollout_segment=seg,
        grid_block_size=grid,
        **knobs,
    )
    for s in (False, True)
    for k in (0, 1, 2, 3, 4, 8)
    for e in (False, True)
    for seg in (0, 3, 4)
    for grid in (None, 65_536, 262_144)
    for knobs in ROLLOUT_KNOBS
    if (s or not seg) and (not knobs or (s and not seg))
)  # segments without per-step remat keep whole segments
EDGE_BLOCKS = (None, 65_536, 262_144, 1_048_576)
PRECISIONS = ("bfloat16", "float32")
PER_DEVICE_BATCHES = (1, 2, 4, 8)
# With `xla`, policies whose analytic peak is within this fraction over the
# budget are compiled too (the analytic peak is within ~20% of XLA:TPU's).
XLA_CANDIDATE_SLACK = 0.25
# Largest spatial split searched: beyond it the latitude bands get so thin
# that most edges cross them (cut 0.40 at 8 parts at 1 deg / M5).
MAX_SPATIAL = 8


@dataclasses.dataclass
class FitResult:
  """One setting that fits, with its cost."""

  remat: RematConfig
  edge_block_size: int | None
  precision: str
  per_device_batch: int
  seconds_per_example: float
  total_duration_seconds: float
  peak_bytes: float
  # Config paths whose value these settings change, and the new values;
  # `per_device_batch` is listed only when it changes.
  changes: dict
  # Devices sharing each example (mesh.spatial); `per_device_batch` is then
  # the examples of each group of them.
  spatial: int = 1
  # Whose peak judged it: "analytic", or the compiler's ("xla:tpu", ...)
  # when the on-disk cache held the figures of at least one phase's program.
  decided_by: str = "analytic"

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["remat"] = dataclasses.asdict(self.remat)
    return d


def model_settings(remat: RematConfig, block: int | None, precision: str) -> dict:
  """Config path -> value of the model fields the search varies."""
  settings = {
      f"model.remat.{f.name}": getattr(remat, f.name) for f in dataclasses.fields(RematConfig)
  }
  settings["model.edge_block_size"] = block
  settings["model.precision"] = precision
  return settings


def changes(
    experiment: Experiment,
    remat: RematConfig,
    block: int | None,
    precision: str,
    per_device_batch: int,
    spatial: int | None = None,
) -> dict:
  """The settings that differ from `experiment` (a phase override of remat
  or precision counts as a difference: the settings clear it). A spatial
  split is listed as `mesh.spatial`, with `per_device_batch` (per group)."""
  current = model_settings(
      experiment.model.remat, experiment.model.edge_block_size, experiment.model.precision
  )
  overridden = set()
  for phase in experiment.schedule.phases:
    if phase.remat is not None:
      overridden |= {k for k in current if k.startswith("model.remat.")}
    if phase.precision is not None:
      overridden.add("model.precision")
  wanted = model_settings(remat, block, precision)
  diff = {k: v for k, v in wanted.items() if k in overridden or current[k] != v}
  devices = estimator.num_devices_of(experiment)
  current_spatial = experiment.mesh.spatial
  spatial = current_spatial if spatial is None else spatial
  current_batch = max(1, experiment.data.global_batch_size * current_spatial // devices)
  if spatial != current_spatial:
    diff["mesh.spatial"] = spatial
  if per_device_batch != current_batch or spatial != current_spatial:
    diff["per_device_batch"] = per_device_batch
  return diff


def with_settings(
    experiment: Experiment,
    remat: RematConfig,
    block: int | None,
    precision: str,
    devices: int,
    per_device_batch: int,
    spatial: int | None = None,
) -> Experiment:
  """The experiment with these settings (phase overrides cleared);
  `per_device_batch` examples per device, or per group of `spatial`."""
  spatial = experiment.mesh.spatial if spatial is None else spatial
  model = dataclasses.replace(
      experiment.model, remat=remat, edge_block_size=block, precision=precision
  )
  phases = tuple(
      dataclasses.replace(p, remat=None, precision=None) for p in experiment.schedule.phases
  )
  return dataclasses.replace(
      experiment,
      model=model,
      mesh=dataclasses.replace(experiment.mesh, num_devices=devices, spatial=spatial),
      data=dataclasses.replace(
          experiment.data, global_batch_size=devices // spatial * per_device_batch
      ),
      schedule=dataclasses.replace(experiment.schedule, phases=phases),
  )


def search(
    experiment: Experiment,
    hardware: str,
    memory_bytes: float | None,
    devices: int,
    precisions=PRECISIONS,
    top: int = 5,
    per_device_batches=None,
    spatials=None,
) -> list[FitResult]:
  """The `top` fastest settings whose every phase fits `memory_bytes`.

  `memory_bytes` None: the hardware's device memory. The global batch
  stays the experiment's unless `per_device_batches` lists others (per
  device, or per group of a spatial split): a batch changes the recipe
  (examples seen, learning dynamics), not just its cost. `spatials`: the
  splits tried (default `spatial_splits`: those that keep the global batch).
  A precision the
  hardware runs as another (bfloat16 on a CPU without bf16 matmuls) is
  tried as the one it runs as.
  """
  hw = hardware_lib.get(hardware)
  precisions = tuple(dict.fromkeys(estimator.priced_precision(p, hw) for p in precisions))
  if spatials is None:
    spatials = spatial_splits(experiment, devices)
  splits = []
  for spatial in spatials:
    if per_device_batches is None:  # the global batch, shared by the groups
      splits.append((spatial, max(1, experiment.data.global_batch_size * spatial // devices)))
    else:
      splits += [(spatial, b) for b in per_device_batches]
  g = sizes.graph_sizes(experiment.model)
  most_edges = max(g.grid2mesh_edges, g.mesh2grid_edges)
  target = hardware if hardware in xla_cost.TPU_TARGETS else None
  results = []
  for remat, block, precision, (spatial, batch) in itertools.product(
      REMAT_POLICIES, EDGE_BLOCKS, precisions, splits
  ):
    if (block is not None and block >= most_edges) or (remat.grid_block_size or 0) >= g.grid_nodes:
      continue  # a block as large as its set changes nothing: seen unblocked
    if not runs_split(remat, spatial):
      continue
    candidate = with_settings(experiment, remat, block, precision, devices, batch, spatial)
    est = estimator.estimate(candidate, hardware)
    budget = est.memory_bytes_per_device if memory_bytes is None else memory_bytes
    peak, decided_by = 0.0, "analytic"
    for p in est.phases:  # the compiler's peak where its figures are cached
      compiled = compiled_peak(candidate, p.rollout_steps, remat, p.precision, batch, target)
      if compiled is None:
        peak = max(peak, p.peak_bytes_per_device)
      else:
        peak = max(peak, compiled[0] if compiled[1] else float("inf"))
        decided_by = compiled[2]
    if peak > budget:
      continue
    examples = sum(p.steps for p in est.phases) * devices // spatial * batch
    results.append(
        FitResult(
            remat=remat,
            edge_block_size=block,
            precision=precision,
            per_device_batch=batch,
            seconds_per_example=est.total_duration_seconds * devices / examples,
            total_duration_seconds=est.total_duration_seconds,
            peak_bytes=peak,
            changes=changes(experiment, remat, block, precision, batch, spatial),
            spatial=spatial,
            decided_by=decided_by,
        )
    )
  results.sort(key=lambda r: (r.total_duration_seconds, r.peak_bytes, len(r.changes)))
  return results[:top]


def runs_split(remat: RematConfig, spatial: int) -> bool:
  """Whether the model split over `spatial` devices per example runs `remat`:
  the split model (`model/spatial.py`) has no prediction-keeping rollout and
  no host targets or inputs (`RematConfig.has_rollout_knobs`)."""
  return spatial == 1 or not remat.has_rollout_knobs


def compiled_peak(
    experiment: Experiment,
    rollout_steps: int,
    remat: RematConfig,
    precision: str,
    batch_per_device: int,
    target: str | None,
) -> tuple[float, bool, str] | None:
  """(peak bytes, fits, "xla:<backend>") of this program from the on-disk
  cache of compiled figures (`xla_cost.cached`; compiles nothing), or None.
  `fits` is False where the compiler refused it (over its device memory)."""
  compiled = xla_cost.cached(
      experiment,
      rollout_steps=rollout_steps,
      remat=remat,
      precision=precision,
      batch_per_device=batch_per_device,
      hardware=target,
  )
  if compiled is None or not compiled.available or compiled.peak_bytes is None:
    return None
  return compiled.peak_bytes, compiled.fits is not False, f"xla:{compiled.backend}"


def spatial_splits(experiment: Experiment, devices: int) -> tuple[int, ...]:
  """Spatial splits K (up to `MAX_SPATIAL`) that divide `devices` and give
  each group of K devices a whole share of the global batch: the recipe
  stays, and where there are more devices than examples a split is how to
  use them. The experiment's own split is always among them."""
  batch = experiment.data.global_batch_size
  splits = {
      k
      for k in range(1, min(devices, MAX_SPATIAL) + 1)
      if devices % k == 0 and batch % (devices // k) == 0
  }
  return tuple(sorted(splits | {experiment.mesh.spatial}))


@dataclasses.dataclass
class PhasePolicy:
  """The cheapest remat policy found for one phase, and whether it fits.

  `decided_by` says whose peak judged it: "analytic", or the compiler's
  ("xla:tpu", "xla:cpu", ...) when its figures for that program were cached
  or compiled (`peak_bytes` is then the compiler's).
  """

  phase: str
  remat: RematConfig
  step_seconds: float
  peak_bytes: float
  fits: bool
  decided_by: str = "analytic"


def phase_policies(
    experiment: Experiment,
    hardware: str,
    memory_bytes: float | None = None,
    xla: bool = False,
    progress=None,
) -> list[PhasePolicy]:
  """Per phase, the fastest `REMAT_POLICIES` entry that fits `memory_bytes`.

  Long rollouts need more recomputation than single steps; choosing per phase
  spends it only where memory demands it. A phase that fits under no policy
  gets the one with the smallest peak, with `fits` False. Edge blocks and
  precision stay as configured (they are model-wide).

  Policies are tried fastest first (analytic time). Each one's peak is the
  compiler's where its program's figures are in the on-disk cache
  (`xla_cost.cached`; XLA:TPU for TPU hardware), else the analytic model's;
  with `xla`, a policy the analytic model says fits (or nearly: within
  `XLA_CANDIDATE_SLACK`) is compiled when not cached, until the compiler
  confirms one.
  """
  hw = hardware_lib.get(hardware)
  budget = hw.memory_bytes if memory_bytes is None else memory_bytes
  target = hardware if hardware in xla_cost.TPU_TARGETS else None
  g = sizes.graph_sizes(experiment.model)
  policies = [r for r in REMAT_POLICIES if (r.grid_block_size or 0) < g.grid_nodes]
  results = []
  for phase in experiment.schedule.phases:
    priced = []
    spatial = phase.spatial or experiment.mesh.spatial
    for remat in (r for r in policies if runs_split(r, spatial)):
      candidate = dataclasses.replace(
          experiment,
          schedule=dataclasses.replace(
              experiment.schedule, phases=(dataclasses.replace(phase, remat=remat, num_steps=1),)
          ),
      )
      p = estimator.estimate(candidate, hardware).phases[0]
      priced.append(PhasePolicy(phase.name, remat, p.step_seconds, p.peak_bytes_per_device, False))
    priced.sort(key=lambda e: (e.step_seconds, e.peak_bytes))
    best = None
    for entry in priced:
      kwargs = dict(
          rollout_steps=phase.rollout_steps,
          remat=entry.remat,
          precision=phase.precision or experiment.model.precision,
          batch_per_device=max(
              1, experiment.data.global_batch_size // estimator.num_devices_of(experiment)
          ),
          hardware=target,
      )
      compiled = xla_cost.cached(experiment, **kwargs)
      if compiled is None and xla and entry.peak_bytes <= budget * (1 + XLA_CANDIDATE_SLACK):
        compiled = xla_cost.analyze(experiment, progress=progress, **kwargs)
      if compiled is not None and compiled.available and compiled.peak_bytes is not None:
        entry.peak_bytes = compiled.peak_bytes
        entry.decided_by = f"xla:{compiled.backend}"
        entry.fits = compiled.peak_bytes <= budget and compiled.fits is not False
      else:
        entry.fits = entry.peak_bytes <= budget
      if entry.fits:
        best = entry
        break
    results.append(best or min(priced, key=lambda e: e.peak_bytes))
  return results


def wider_split(
    experiment: Experiment, hardware: str, memory_bytes: float | None = None, splits=(2, 4, 8)
) -> tuple[int, int] | None:
  """(K, devices): the smallest spatial split K, on K / spatial times the
  devices with the global batch unchanged, under which every phase fits
  with its own remat policy (`phase_policies`); None if none of `splits`
  does. What to do when no policy fits: more chips per example."""
  devices = estimator.num_devices_of(experiment)
  current = experiment.mesh.spatial
  for k in splits:
    if k <= current:
      continue
    wider = devices * k // current
    candidate = dataclasses.replace(
        experiment, mesh=dataclasses.replace(experiment.mesh, num_devices=wider, spatial=k)
    )
    if all(p.fits for p in phase_policies(candidate, hardware, memory_bytes)):
      return k, wider
  return None
