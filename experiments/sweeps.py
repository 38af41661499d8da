"""Sweeps: lists of overrides, one dict per member.

Use with `python -m graphcast_fdl.main sweep --config=config:NAME
--config=sweep:SWEEP(...)`; several `sweep:` flags take the product. A key is
either a config path (`model.latent_size`) or `fiddler:NAME` whose value is the
fiddler's keyword arguments, so fields that move together (resolution, device
count) stay consistent in every member.
"""

from __future__ import annotations

import itertools
from typing import Sequence

Member = dict


def product(*sweeps: Sequence[Member]) -> list[Member]:
  """Every combination of one member from each sweep."""
  return [_merge(members) for members in itertools.product(*sweeps)]


def zipped(*sweeps: Sequence[Member]) -> list[Member]:
  """The i-th members of each sweep together; sweeps must be equally long."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ValueError(f"zipped sweeps must have equal lengths, got {sorted(lengths)}")
  return [_merge(members) for members in zip(*sweeps)]


def _merge(members: Sequence[Member]) -> Member:
  merged = {}
  for member in members:
    merged.update(member)
  return merged


def latent_sizes(sizes: Sequence[int] = (128, 256, 512)) -> list[Member]:
  """Width of every MLP and latent feature."""
  return [{"model.latent_size": n} for n in sizes]


def mesh_sizes(sizes: Sequence[int] = (4, 5, 6)) -> list[Member]:
  """Finest mesh refinement."""
  return [{"model.mesh_size": n} for n in sizes]


def resolutions(degrees: Sequence[float] = (1.0, 0.25)) -> list[Member]:
  """Grid, default mesh refinement and data sources together."""
  return [{"fiddler:resolution": {"degrees": d}} for d in degrees]


def device_counts(counts: Sequence[int] = (8, 16, 32), per_device_batch: int = 1) -> list[Member]:
  """Device mesh and global batch together."""
  return [{"fiddler:devices": {"n": n, "per_device_batch": per_device_batch}} for n in counts]


def learning_rates(peaks: Sequence[float] = (3e-4, 1e-3, 3e-3), phase: int = 0) -> list[Member]:
  """Peak learning rate of one phase (by index)."""
  return [{f"schedule.phases[{phase}].learning_rate.peak": lr} for lr in peaks]


def max_rollouts(rollouts: Sequence[int] = (4, 8, 12), steps_each: int = 1000) -> list[Member]:
  """Annealing schedules up to different rollout lengths."""
  return [{"fiddler:annealing": {"max_rollout": k, "steps_each": steps_each}} for k in rollouts]


def scaling() -> list[Member]:
  """Resolution zipped with the mesh and devices that suit it."""
  return zipped(resolutions((1.0, 0.5, 0.25)), mesh_sizes((5, 6, 6)), device_counts((8, 16, 32)))


def demo_widths() -> list[Member]:
  """Two short 1-step demo runs of different widths: the sweep smoke test."""
  short = {"fiddler:single_step_only": {}, "fiddler:scale_steps": {"factor": 0.05}}
  return product([short], latent_sizes((16, 32)))
