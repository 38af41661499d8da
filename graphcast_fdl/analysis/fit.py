"""Search memory knobs for the cheapest settings that fit a memory budget.

Tries every remat policy (including rollout segments and grid-node blocks),
edge block size, precision and per-device batch,
prices the whole schedule with the analytic estimator, keeps the settings
whose every phase fits `memory_bytes`, and ranks them by device-seconds per
training example (so a bigger per-device batch that trains the same number
of examples faster wins). Results are printed as `--config` flags to paste.
"""

from __future__ import annotations

import dataclasses
import itertools

from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.analysis import sizes
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.train.experiment import Experiment

REMAT_POLICIES = tuple(
    RematConfig(rollout_step=s, processor_every_k=k, encoder_decoder=e,
                rollout_segment=seg, grid_block_size=grid)
    for s in (False, True) for k in (0, 1, 2, 3, 4, 8) for e in (False, True)
    for seg in (0, 3, 4) for grid in (None, 65_536, 262_144)
    if s or not seg)  # segments without per-step remat keep whole segments
EDGE_BLOCKS = (None, 65_536, 262_144, 1_048_576)
PRECISIONS = ("bfloat16", "float32")
PER_DEVICE_BATCHES = (1, 2, 4, 8)


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
  flags: list

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["remat"] = dataclasses.asdict(self.remat)
    return d


def config_flags(remat: RematConfig, block: int | None, precision: str,
                 devices: int, per_device_batch: int) -> list[str]:
  """The `--config` directives that select these settings."""
  return [
      f"--config=fiddler:devices(n={devices},per_device_batch={per_device_batch})",
      f"--config=set:model.remat.rollout_step={remat.rollout_step}",
      f"--config=set:model.remat.processor_every_k={remat.processor_every_k}",
      f"--config=set:model.remat.encoder_decoder={remat.encoder_decoder}",
      f"--config=set:model.remat.rollout_segment={remat.rollout_segment}",
      f"--config=set:model.remat.grid_block_size={remat.grid_block_size}",
      f"--config=set:model.edge_block_size={block}",
      f'--config=set:model.precision="{precision}"',
  ]


def with_settings(experiment: Experiment, remat: RematConfig,
                  block: int | None, precision: str, devices: int,
                  per_device_batch: int) -> Experiment:
  """The experiment with these settings (phase overrides cleared)."""
  model = dataclasses.replace(experiment.model, remat=remat,
                              edge_block_size=block, precision=precision)
  phases = tuple(dataclasses.replace(p, remat=None, precision=None)
                 for p in experiment.schedule.phases)
  return dataclasses.replace(
      experiment, model=model,
      mesh=dataclasses.replace(experiment.mesh, num_devices=devices),
      data=dataclasses.replace(experiment.data,
                               global_batch_size=devices * per_device_batch),
      schedule=dataclasses.replace(experiment.schedule, phases=phases))


def search(experiment: Experiment, hardware: str, memory_bytes: float | None,
           devices: int, precisions=PRECISIONS, top: int = 5) -> list[FitResult]:
  """The `top` cheapest settings whose every phase fits `memory_bytes`.

  `memory_bytes` None: the hardware's device memory.
  """
  g = sizes.graph_sizes(experiment.model)
  most_edges = max(g.grid2mesh_edges, g.mesh2grid_edges)
  results = []
  for remat, block, precision, batch in itertools.product(
      REMAT_POLICIES, EDGE_BLOCKS, precisions, PER_DEVICE_BATCHES):
    if ((block is not None and block >= most_edges)
        or (remat.grid_block_size or 0) >= g.grid_nodes):
      continue  # a block as large as its set changes nothing: seen unblocked
    candidate = with_settings(experiment, remat, block, precision, devices,
                              batch)
    est = estimator.estimate(candidate, hardware)
    budget = est.memory_bytes_per_device if memory_bytes is None else memory_bytes
    peak = max(p.peak_bytes_per_device for p in est.phases)
    if peak > budget:
      continue
    examples = sum(p.steps for p in est.phases) * devices * batch
    results.append(FitResult(
        remat=remat, edge_block_size=block, precision=precision,
        per_device_batch=batch,
        seconds_per_example=est.total_duration_seconds * devices / examples,
        total_duration_seconds=est.total_duration_seconds, peak_bytes=peak,
        flags=config_flags(remat, block, precision, devices, batch)))
  results.sort(key=lambda r: (r.seconds_per_example, r.peak_bytes))
  return results[:top]


@dataclasses.dataclass
class PhasePolicy:
  """The cheapest remat policy found for one phase, and whether it fits."""

  phase: str
  remat: RematConfig
  step_seconds: float
  peak_bytes: float
  fits: bool


def phase_policies(experiment: Experiment, hardware: str,
                   memory_bytes: float | None = None) -> list[PhasePolicy]:
  """Per phase, the fastest `REMAT_POLICIES` entry that fits `memory_bytes`.

  Long rollouts need more recomputation than single steps; choosing per phase
  spends it only where memory demands it. A phase that fits under no policy
  gets the one with the smallest peak, with `fits` False. Edge blocks and
  precision stay as configured (they are model-wide).
  """
  hw = hardware_lib.get(hardware)
  budget = hw.memory_bytes if memory_bytes is None else memory_bytes
  g = sizes.graph_sizes(experiment.model)
  policies = [r for r in REMAT_POLICIES
              if (r.grid_block_size or 0) < g.grid_nodes]
  results = []
  for phase in experiment.schedule.phases:
    best = smallest = None
    for remat in policies:
      candidate = dataclasses.replace(
          experiment, schedule=dataclasses.replace(
              experiment.schedule,
              phases=(dataclasses.replace(phase, remat=remat, num_steps=1),)))
      priced = estimator.estimate(candidate, hardware).phases[0]
      entry = PhasePolicy(phase.name, remat, priced.step_seconds,
                          priced.peak_bytes_per_device,
                          priced.peak_bytes_per_device <= budget)
      if entry.fits and (best is None or entry.step_seconds < best.step_seconds):
        best = entry
      if smallest is None or entry.peak_bytes < smallest.peak_bytes:
        smallest = entry
    results.append(best or smallest)
  return results
