"""The published weighted MSE on normalised residuals.

Per variable: mean over (level, lat, lon) of (prediction - target)^2 times
latitude weights (cell area, mean 1) and level weights (level / mean(level)),
kept per batch element; then a weighted sum over variables (0.1 for 10 m winds,
mean sea level pressure and precipitation, 1 otherwise). The autoregressive
loss (predictor.py) is the mean of this over rollout steps and the batch.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_fdl.model.channels import ChannelLayout

PER_VARIABLE_WEIGHTS = {
    "2m_temperature": 1.0,
    "10m_u_component_of_wind": 0.1,
    "10m_v_component_of_wind": 0.1,
    "mean_sea_level_pressure": 0.1,
    "total_precipitation_6hr": 0.1,
}


def _uniform_delta(lat: np.ndarray) -> float:
  diff = np.diff(lat)
  if not np.all(np.isclose(diff[0], diff)):
    raise ValueError(f"latitudes are not uniformly spaced: {lat}")
  return float(np.abs(diff[0]))


def latitude_weights(lat: Sequence[float]) -> np.ndarray:
  """Weights proportional to grid cell area, normalised to mean 1.

  Supports equispaced latitudes either at the poles (pole cells span half a
  spacing) or offset by half a spacing from them.
  """
  lat = np.asarray(lat, np.float64)
  delta = _uniform_delta(lat)
  if np.any(np.isclose(np.abs(lat), 90.0)):
    if not (np.isclose(lat.max(), 90.0) and np.isclose(lat.min(), -90.0)):
      raise ValueError(f"latitudes do not span -90..90: {lat}")
    weights = np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(delta / 2))
    weights[[0, -1]] = np.sin(np.deg2rad(delta / 4)) ** 2
  else:
    if not (np.isclose(lat.max(), 90 - delta / 2) and np.isclose(lat.min(), -90 + delta / 2)):
      raise ValueError(f"latitudes do not end half a spacing from the poles: {lat}")
    weights = np.cos(np.deg2rad(lat))
  return weights / weights.mean()


def level_weights(levels: Sequence[int]) -> np.ndarray:
  """Weights proportional to pressure, normalised to mean 1."""
  levels = np.asarray(levels, np.float64)
  return levels / levels.mean()


class WeightedMSE:
  """The published loss on stacked grid-node channels.

  Attributes:
    names: target variables, sorted (the channel order).
  """

  def __init__(
      self,
      layout: ChannelLayout,
      lat: Sequence[float],
      num_lon: int,
      levels: Sequence[int],
      per_variable_weights: Mapping[str, float] | None = None,
  ):
    if per_variable_weights is None:
      per_variable_weights = PER_VARIABLE_WEIGHTS
    self.names = sorted({v for v, _, _ in layout.outputs})
    # Grid nodes are lat-major: node = lat_index * num_lon + lon_index.
    self._node_weights = np.repeat(latitude_weights(lat), num_lon)
    level_w = level_weights(levels)
    counts = {v: 0 for v in self.names}
    for v, _, _ in layout.outputs:
      counts[v] += 1
    # [C, V]: a variable's loss is the mean over its channels (levels) of the
    # level-weighted per-channel means.
    reduce = np.zeros((len(layout.outputs), len(self.names)), np.float32)
    for c, (v, _, l) in enumerate(layout.outputs):
      reduce[c, self.names.index(v)] = (1.0 if l is None else level_w[l]) / counts[v]
    self._reduce = reduce
    self._variable_weights = np.array(
        [per_variable_weights.get(v, 1.0) for v in self.names], np.float32
    )

  def __call__(
      self, predictions: jax.Array, targets: jax.Array
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss per batch element.

    Args:
      predictions, targets: normalised [B, C, n_grid]; the squared error is
        formed in their dtype (as published), reduced in float32.

    Returns:
      (weighted total [B], {name: unweighted per-variable loss [B]}), float32.
    """
    return self.from_channel_means(self.channel_means(predictions, targets))

  @property
  def node_weights(self) -> np.ndarray:
    """[n_grid] float latitude weights of the grid nodes (mean 1)."""
    return self._node_weights

  def channel_means(
      self,
      predictions: jax.Array,
      targets: jax.Array,
      node_weights=None,
      num_nodes: int | None = None,
  ) -> jax.Array:
    """Latitude-weighted mean squared error per channel, float32 [B, C].

    A device holding some of the nodes passes their `node_weights` (zero for
    padding) and the global `num_nodes`: its result is then its share of the
    mean, and the shares sum to the mean.
    """
    if node_weights is None:
      node_weights = self._node_weights
    error = (predictions - targets) ** 2
    error = error * node_weights.astype(error.dtype)
    # Mean over nodes as a matrix product: XLA:CPU reduces faster that way.
    num_nodes = num_nodes or error.shape[-1]
    ones = np.full((error.shape[-1],), 1.0 / num_nodes, np.float32)
    return jnp.dot(error.astype(jnp.float32), ones)

  def from_channel_means(self, per_channel: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(weighted total [B], {name: per-variable loss [B]}) from [B, C]."""
    per_variable = per_channel @ self._reduce  # [B, V]
    total = per_variable @ self._variable_weights
    return total, {n: per_variable[:, i] for i, n in enumerate(self.names)}
