"""Averages of step metrics between reports, flattened to writer names.

Metrics arrive as host values (floats and a per-variable dict); skipped
(non-finite) steps are left out of the averages and counted instead.
"""

from __future__ import annotations

import collections

import jax
import numpy as np


def to_host(tree):
  """Host numpy copies of (replicated) arrays; works with several processes."""
  def leaf(x):
    if isinstance(x, jax.Array):
      return np.asarray(x.addressable_shards[0].data)
    return np.asarray(x)
  return jax.tree.map(leaf, tree)


def flatten(metrics: dict, prefix: str) -> dict[str, float]:
  """{"loss": a, "per_variable": {v: b}} -> {"prefix/loss": a, "prefix/loss/v": b}."""
  flat = {}
  for name, value in metrics.items():
    if name == "per_variable":
      for var, v in value.items():
        flat[f"{prefix}/loss/{var}"] = float(v)
    elif name != "finite":
      flat[f"{prefix}/{name}"] = float(value)
  return flat


class MeanMetrics:
  """Running means of flattened metrics over the finite steps since `reset`."""

  def __init__(self, prefix: str = "train"):
    self._prefix = prefix
    self.reset()

  def reset(self) -> None:
    self._sums = collections.defaultdict(float)
    self._count = 0
    self._skipped = 0

  def add(self, host_metrics: dict) -> None:
    if not bool(host_metrics.get("finite", True)):
      self._skipped += 1
      return
    for name, value in flatten(host_metrics, self._prefix).items():
      self._sums[name] += value
    self._count += 1

  def result(self) -> dict[str, float]:
    out = {k: v / self._count for k, v in self._sums.items()} if self._count else {}
    out[f"{self._prefix}/skipped_steps"] = float(self._skipped)
    return out
