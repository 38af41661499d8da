"""Stacking variables into grid-node channels and back, as published.

The published model stacks variables in sorted name order; within a variable
the non-spatial dims (time, then level) are flattened time-major, inputs first
then forcings. Arrays here are in the Batch layout (see batch.py): atmospheric
[B, T, level, lat, lon], surface [B, T, lat, lon], day progress [B, T, lon],
year progress [B, T], static [B, lat, lon].

Outside the network everything stays stacked channel-major, [B, C, n_grid]
with node = lat_index * n_lon + lon_index, so stacking is reshapes and one
concatenation (no per-variable transposes), normalisation is one per-channel
affine map, feeding predictions back is one static gather of channel rows
(`ChannelLayout`), and loss reductions run along contiguous rows. Only the
network itself sees [n_grid, B, C].
"""

from __future__ import annotations

from typing import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_fdl.task import has_levels


def slice_runs(index) -> tuple[tuple[int, int], ...]:
  """(start, stop) runs of consecutive values of `index`: `take(x, index)` is
  the concatenation of these static slices (`take_by_slices`)."""
  runs = []
  for i in np.asarray(index).tolist():
    if runs and runs[-1][1] == i:
      runs[-1][1] += 1
    else:
      runs.append([i, i + 1])
  return tuple(tuple(r) for r in runs)


def take_by_slices(x: jax.Array, runs, axis: int) -> jax.Array:
  """`jnp.take(x, index, axis)` for `runs = slice_runs(index)`, as static
  slices. Their gradient is pads added in place, where a gather's is a
  scatter-add: XLA:TPU runs that as a loop over the indices after the rest of
  the backward pass, holding every update until then (at 0.25 deg / 37
  levels, 1.8 GiB of a rollout step's peak)."""
  parts = [jax.lax.slice_in_dim(x, start, stop, axis=axis) for start, stop in runs]
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=axis)


def _frames(name: str, x: jax.Array, grid_shape) -> jax.Array:
  """A time-dependent variable -> [B, T, c, n_grid] (c = levels or 1)."""
  batch, frames = x.shape[:2]
  n_lat, n_lon = grid_shape
  if name.startswith("year_progress"):  # [B, T]
    x = jnp.broadcast_to(x[:, :, None, None], (batch, frames, 1, n_lat * n_lon))
  elif name.startswith("day_progress"):  # [B, T, lon]
    x = jnp.broadcast_to(x[:, :, None, :], (batch, frames, n_lat, n_lon))
    x = x.reshape(batch, frames, 1, n_lat * n_lon)
  elif x.ndim == 5:  # [B, T, level, lat, lon]
    x = x.reshape(x.shape[:3] + (n_lat * n_lon,))
  elif x.ndim == 4:  # [B, T, lat, lon]
    x = x.reshape(batch, frames, 1, n_lat * n_lon)
  else:
    raise ValueError(f"variable {name!r} has unexpected shape {x.shape}")
  return x


def stack_inputs(
    arrays: Mapping[str, jax.Array], static: Iterable[str], grid_shape: tuple[int, int]
) -> jax.Array:
  """All input frames -> [B, C_in, n_grid] (vars sorted, time-major)."""
  static = set(static)
  parts = []
  for name in sorted(arrays):
    x = arrays[name]
    if name in static:  # [B, lat, lon]
      parts.append(x.reshape(x.shape[0], 1, -1))
    else:
      x = _frames(name, x, grid_shape)
      parts.append(x.reshape(x.shape[0], -1, x.shape[-1]))
  return jnp.concatenate(parts, axis=1)


def stack_steps(arrays: Mapping[str, jax.Array], grid_shape: tuple[int, int]) -> jax.Array:
  """Per-step variables (targets, forcings) -> [T, B, C, n_grid]."""
  x = jnp.concatenate([_frames(name, arrays[name], grid_shape) for name in sorted(arrays)], axis=2)
  return jnp.swapaxes(x, 0, 1)


def unstack_steps(
    x: jax.Array, targets: Iterable[str], num_levels: int, grid_shape: tuple[int, int]
) -> dict[str, jax.Array]:
  """[T, B, C, n_grid] -> {name: [B, T, (level,) lat, lon]}."""
  x = jnp.swapaxes(x, 0, 1)
  x = x.reshape(x.shape[:3] + tuple(grid_shape))
  out = {}
  start = 0
  for name in sorted(targets):
    if has_levels(name):
      out[name] = x[:, :, start : start + num_levels]
      start += num_levels
    else:
      out[name] = x[:, :, start]
      start += 1
  if start != x.shape[2]:
    raise ValueError(f"model outputs {x.shape[2]} channels, targets need {start}")
  return out


class ChannelLayout:
  """Static channel bookkeeping of one task: which channel is which.

  Channels are (variable, frame, level index) with frame None for static
  inputs and level None for single-level variables.
  """

  def __init__(
      self,
      input_variables: Iterable[str],
      target_variables: Iterable[str],
      forcing_variables: Iterable[str],
      num_levels: int,
      num_frames: int,
  ):
    targets, forcings = set(target_variables), set(forcing_variables)
    self.static = tuple(sorted(v for v in input_variables if v not in targets | forcings))
    levels = lambda v: range(num_levels) if has_levels(v) else [None]
    self.inputs = [
        (v, t, l)
        for v in sorted(input_variables)
        for t in ([None] if v in self.static else range(num_frames))
        for l in levels(v)
    ]
    self.forcings = [(v, 0, l) for v in sorted(forcings) for l in levels(v)]
    self.outputs = [(v, 0, l) for v in sorted(targets) for l in levels(v)]
    self.num_frames = num_frames

    index = {c: i for i, c in enumerate(self.inputs)}
    # Last input frame of each output channel, or -1 for non-input targets.
    self.last_input = np.array([index.get((v, num_frames - 1, l), -1) for v, _, l in self.outputs])
    # Next inputs, gathered from concat[inputs, outputs, forcings].
    n_in, n_out = len(self.inputs), len(self.outputs)
    out_index = {(v, l): n_in + i for i, (v, _, l) in enumerate(self.outputs)}
    forcing_index = {(v, l): n_in + n_out + i for i, (v, _, l) in enumerate(self.forcings)}
    next_index = []
    for i, (v, t, l) in enumerate(self.inputs):
      if t is None:
        next_index.append(i)
      elif t < num_frames - 1:
        next_index.append(index[(v, t + 1, l)])
      elif (v, l) in out_index:
        next_index.append(out_index[(v, l)])
      elif (v, l) in forcing_index:
        next_index.append(forcing_index[(v, l)])
      else:
        raise ValueError(
            f"input variable {v!r} changes over time but is " "neither a target nor a forcing"
        )
    self.next_index = np.array(next_index)
    # The same as runs of consecutive channels of one source (inputs,
    # outputs, forcings): (source, start, stop) slices whose concatenation is
    # the next inputs. Slices transpose to pads in the backward pass, where a
    # gather by `next_index` transposes to a scatter-add into a buffer of all
    # three sources (2.8 GiB at 0.25 deg / 37 levels).
    bounds = (0, n_in, n_in + n_out, n_in + n_out + len(self.forcings))
    runs = []
    for i in next_index:
      source = int(np.searchsorted(bounds, i, side="right")) - 1
      local = i - bounds[source]
      if runs and runs[-1][0] == source and runs[-1][2] == local:
        runs[-1][2] += 1
      else:
        runs.append([source, local, local + 1])
    self.next_runs = tuple(tuple(r) for r in runs)

  def vector(self, table: Mapping[str, np.ndarray], channels, default: float) -> np.ndarray:
    """Per-channel values of a per-variable (per-level) statistic."""
    values = []
    for v, _, l in channels:
      if v not in table:
        values.append(default)
      else:
        x = np.asarray(table[v]).reshape(-1)
        values.append(x[0] if l is None else x[l])
    return np.asarray(values, np.float32)

  def next_inputs(self, inputs: jax.Array, outputs: jax.Array, forcings: jax.Array) -> jax.Array:
    """[B, C, n_grid] inputs without the oldest frame, plus predictions (or
    forcings) as the newest."""
    sources = (inputs, outputs.astype(inputs.dtype), forcings.astype(inputs.dtype))
    return jnp.concatenate(
        [
            jax.lax.slice_in_dim(sources[source], start, stop, axis=1)
            for source, start, stop in self.next_runs
        ],
        axis=1,
    )
