"""Normalisation of inputs and residual targets, as the published wrapper.

Inputs and forcings: (x - mean) / stddev. Targets that are also inputs are
predicted as residuals over the last input frame, scaled by the stddev of
6-hourly differences: (target - last_input) / diffs_stddev. Targets that are
not inputs (precipitation in the operational task) are normalised like inputs.
A variable without statistics is left as is (the published code only warns).
Everything works on channel-major stacks [..., C, n_grid] (see channels.py).
"""

from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_fdl.model import channels
from graphcast_fdl.model.channels import ChannelLayout
from graphcast_fdl.model.normalization_stats import NormalizationStats


def stats_table(dataset, names: Iterable[str], levels: Iterable[int]) -> dict[str, np.ndarray]:
  """{name: scalar or [level]} float32 for the names the dataset has."""
  table = {}
  levels = [int(l) for l in levels]
  for name in names:
    if name not in dataset.data_vars:
      continue
    var = dataset[name]
    if "level" in var.dims:
      missing = sorted(set(levels) - set(int(v) for v in var.level.values))
      if missing:
        raise ValueError(f"normalisation stats for {name!r} lack levels " f"{missing}")
      var = var.sel(level=levels)
    table[name] = np.asarray(var.values, np.float32)
  return table


class ChannelNormalization:
  """Per-channel normalisation constants for one task and channel layout."""

  def __init__(self, stats: NormalizationStats, layout: ChannelLayout, levels: Iterable[int]):
    names = {c[0] for c in layout.inputs + layout.forcings + layout.outputs}
    levels = list(levels)
    mean = stats_table(stats.mean, names, levels)
    stddev = stats_table(stats.stddev, names, levels)
    diffs = stats_table(stats.diffs_stddev, names, levels)
    self.input_mean = layout.vector(mean, layout.inputs, 0.0)
    self.input_std = layout.vector(stddev, layout.inputs, 1.0)
    self.forcing_mean = layout.vector(mean, layout.forcings, 0.0)
    self.forcing_std = layout.vector(stddev, layout.forcings, 1.0)
    self.last_input = layout.last_input
    self._last_runs = channels.slice_runs(np.maximum(self.last_input, 0))
    residual = self.last_input >= 0
    self.output_scale = np.where(
        residual,
        layout.vector(diffs, layout.outputs, 1.0),
        layout.vector(stddev, layout.outputs, 1.0),
    )
    self.output_mean = np.where(residual, 0.0, layout.vector(mean, layout.outputs, 0.0)).astype(
        np.float32
    )
    self._residual = residual
    # Channel-major arrays [..., C, n_grid]: per-channel constants as [C, 1].
    for name in (
        "input_mean",
        "input_std",
        "forcing_mean",
        "forcing_std",
        "output_scale",
        "output_mean",
    ):
      setattr(self, name, getattr(self, name).astype(np.float32)[:, None])

  def inputs(self, x: jax.Array) -> jax.Array:
    return (x - self.input_mean) / self.input_std

  def forcings(self, x: jax.Array) -> jax.Array:
    return (x - self.forcing_mean) / self.forcing_std

  def residual_base(self, inputs: jax.Array) -> jax.Array:
    """What outputs are residuals over: the last input frame for outputs that
    are inputs, the mean for the others. Computed once per step and shared
    by `prediction` and `target`, so that the backward pass sums their
    gradients before they reach the inputs (one buffer of output channels
    instead of two held through the network's backward pass)."""
    last = channels.take_by_slices(inputs, self._last_runs, axis=-2)
    return jnp.where(self._residual[:, None], last, self.output_mean)

  def prediction(self, norm_outputs: jax.Array, base: jax.Array) -> jax.Array:
    """Normalised outputs (any dtype) -> float32 predictions, given
    `residual_base(inputs)`."""
    return norm_outputs.astype(jnp.float32) * self.output_scale + base

  def target(self, targets: jax.Array, base: jax.Array) -> jax.Array:
    """Targets -> normalised residuals (or normalised values), float32,
    given `residual_base(inputs)`."""
    return (targets.astype(jnp.float32) - base) / self.output_scale
