"""Persistence scored with the training loss, the bar a trained model must clear.

Persistence forecasts every target time with the last input frame. In the
loss's normalised-residual space that is a residual of zero at every rollout
step (the fed-back frame never changes), so its loss is the weighted mean
square of each target's residual from the last input, scaled by the same
diffs stddev, latitude, level and variable weights as `Predictor.loss`.
A target that is not an input (precipitation in the operational task) has
no last frame: it is forecast as its normalised mean (zero).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from graphcast_fdl import task as task_lib
from graphcast_fdl.grid import grid_coords
from graphcast_fdl.model import losses
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats


def persistence_loss_fn(model: ModelConfig, task: task_lib.TaskConfig,
                        stats: NormalizationStats):
  """batch -> (scalar, {target: loss}), reduced like `Predictor.loss`."""
  lat, _ = grid_coords(model.resolution, model.include_poles)
  levels = list(task.pressure_levels)
  lat_weights = jnp.asarray(losses.latitude_weights(lat), jnp.float32)[:, None]
  level_weights = jnp.asarray(losses.level_weights(levels), jnp.float32)[
      :, None, None]

  def table(dataset, name):
    """Stats of one variable, broadcastable to [B, T, (level,) lat, lon]."""
    values = dataset[name]
    if "level" in values.dims:
      return jnp.asarray(values.sel(level=levels).values, jnp.float32)[
          :, None, None]
    return jnp.asarray(values.values, jnp.float32)

  def normalize_target(name, target, last):
    if last is None:
      return (target - table(stats.mean, name)) / table(stats.stddev, name)
    return (target - last) / table(stats.diffs_stddev, name)

  def persistence_loss(batch: Batch):
    norm_targets = {}
    for name in task.target_variables:
      target = batch.targets[name].astype(jnp.float32)  # [B, T, ...]
      last = (batch.inputs[name][:, -1:].astype(jnp.float32)
              if name in task.input_variables else None)
      norm = normalize_target(name, target, last)
      norm_targets[name] = jnp.moveaxis(norm, 1, 0)  # [T, B, ...]
    def one_step(targets_t):  # {name: [B, (level,) lat, lon]} -> [B], ...
      per_variable = {}
      for name, target in targets_t.items():
        error = target ** 2 * lat_weights.astype(target.dtype)
        if error.ndim == 4:
          error = error * level_weights
        per_variable[name] = jnp.mean(error, axis=tuple(range(1, error.ndim)))
      total = sum(per_variable[n] * losses.PER_VARIABLE_WEIGHTS.get(n, 1.0)
                  for n in sorted(per_variable))
      return total, per_variable
    total, per_variable = jax.lax.map(one_step, norm_targets)  # [T, B]
    mean = lambda x: jnp.mean(jnp.mean(x, axis=0))
    return mean(total), {k: mean(v) for k, v in per_variable.items()}

  return persistence_loss
