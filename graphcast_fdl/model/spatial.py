"""GraphCast with one example shared by the devices of a `space` mesh axis.

Each device of the space axis holds one part of the grid and of the mesh
(`graph.partition`: latitude bands) and every edge into them. The network is
the unsplit one (`graphcast.encode/process/decode`, same parameters, same
remat policies), run per device inside `jax.shard_map` on its part's
`GraphArrays`, whose edge sets carry a `halo.Halo`: before each message
step the sender rows other devices need are swapped by one `all_to_all`
(grid latents once in the encoder, mesh latents once per processor step and
once in the decoder); receivers' sums are formed where the receivers live.
The loss sums each device's share of the weighted mean (`psum` over space),
then averages over the data axis if the mesh has one.

Grid channels stay in the published node order: the grid parts are
latitude bands of whole rows of it, so a batch's stacked [B, C, n_grid]
arrays are padded at the end to K * part size and split along their last
axis. `place_batch` does that padding on the host, in latitude rows, so that
a training batch is placed with each device holding only its band of every
example (not a copy of the whole example per device).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from graphcast_fdl import graph as graph_lib
from graphcast_fdl.graph import partition as partition_lib
from graphcast_fdl.model import channels
from graphcast_fdl.model import gnn
from graphcast_fdl.model import halo as halo_lib
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.model.predictor import Predictor
from graphcast_fdl.task import TaskConfig

SPACE_AXIS = "space"


def _take_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """x[rows] with zeros where rows is -1 (padding)."""
  out = np.asarray(x)[np.maximum(rows, 0)]
  out[rows < 0] = 0
  return out


def _edge_parts(edges: partition_lib.EdgePartition, axis_name: str) -> gnn.EdgeArrays:
  """Per-part edge arrays stacked on a leading [K] axis."""
  num_parts, _, halo_size = edges.send_rows.shape
  halo = None
  if halo_size:
    halo = halo_lib.Halo(
        send_rows=edges.send_rows.reshape(num_parts, num_parts * halo_size), axis_name=axis_name
    )
  return gnn.EdgeArrays(
      senders=edges.senders, receivers=edges.receivers, features=edges.features, halo=halo
  )


def graph_parts(
    graphs, parts: partition_lib.GraphPartition, axis_name: str = SPACE_AXIS
) -> gnn.GraphArrays:
  """`GraphArrays` (numpy) of every part, stacked on a leading [K] axis."""
  return gnn.GraphArrays(
      grid_nodes=_take_rows(np.asarray(graphs.grid_node_features, np.float32), parts.grid.nodes),
      mesh_nodes=_take_rows(np.asarray(graphs.mesh_node_features, np.float32), parts.mesh.nodes),
      grid2mesh=_edge_parts(parts.grid2mesh, axis_name),
      mesh=_edge_parts(parts.mesh_edges, axis_name),
      mesh2grid=_edge_parts(parts.mesh2grid, axis_name),
  )


def scaled_blocks(model: ModelConfig, num_parts: int) -> ModelConfig:
  """`model` with its edge and grid-row blocks a K-th the size.

  A device holds a K-th of the edges and grid rows; blocks of the unsplit
  size would leave a block's temporaries (the largest at 1 deg and finer)
  as large as unsplit. Scaled, each device runs as many blocks as the
  unsplit model and every temporary shrinks with the split.
  """
  if num_parts == 1:
    return model
  scale = lambda size: size and -(-size // num_parts)
  return dataclasses.replace(
      model,
      edge_block_size=scale(model.edge_block_size),
      remat=dataclasses.replace(model.remat, grid_block_size=scale(model.remat.grid_block_size)),
  )


def exchanged_rows(parts: partition_lib.GraphPartition, gnn_msg_steps: int) -> int:
  """Node rows one device sends per forward pass of the network.

  Grid rows once (encoder), mesh rows once per processor step and once for
  the decoder; each exchange sends (K - 1) blocks of that set's halo size
  (the block a device "sends" to itself does not leave it). The backward
  pass sends as many again.
  """
  k = parts.num_parts
  return (k - 1) * (
      parts.grid2mesh.halo_size
      + gnn_msg_steps * parts.mesh_edges.halo_size
      + parts.mesh2grid.halo_size
  )


class SpatialPredictor(Predictor):
  """A `Predictor` whose loss and rollout run split over the `space` axis of
  `mesh`.

  Same parameters as `Predictor` (checkpoints are interchangeable); edge
  and grid-row blocks are scaled to the parts (`scaled_blocks`). If the
  mesh also has `data_axis`, the batch is split over it as well (a rollout's
  only where its batch divides). `persistence_loss` runs unsplit.
  """

  # `train.sharding.data_parallel` leaves this loss as it is.
  splits_batch = True

  def __init__(
      self,
      model: ModelConfig,
      task: TaskConfig,
      stats: NormalizationStats,
      graphs=None,
      *,
      mesh: Mesh,
      space_axis: str = SPACE_AXIS,
      data_axis: str | None = None,
  ):
    if graphs is None:
      graphs = graph_lib.graphs_for_model(model)
    if space_axis in mesh.axis_names:
      model = scaled_blocks(model, mesh.shape[space_axis])
    super().__init__(model, task, stats, graphs)
    if space_axis not in mesh.axis_names:
      raise ValueError(
          f"space_axis={space_axis!r} is not an axis of the mesh " f"{mesh.axis_names}"
      )
    if data_axis is not None and data_axis not in mesh.axis_names:
      raise ValueError(f"data_axis={data_axis!r} is not an axis of the mesh " f"{mesh.axis_names}")
    self.mesh = mesh
    self.space_axis = space_axis
    self.data_axis = data_axis
    self.partition = partition_lib.partition_graphs(graphs, mesh.shape[space_axis])
    self._num_grid = graphs.grid_node_features.shape[0]
    # The padding appended to the grid order is all that maps it to parts:
    # whole latitude rows, so the parts are the bands of a lat-padded field.
    grid_nodes = self.partition.grid.nodes.reshape(-1)
    assert np.array_equal(grid_nodes[: self._num_grid], np.arange(self._num_grid))
    self._padded_lat = grid_nodes.size // self._grid_shape[1]
    assert self._padded_lat * self._grid_shape[1] == grid_nodes.size
    parts = NamedSharding(mesh, P(space_axis))
    self._parts = jax.device_put(graph_parts(graphs, self.partition, space_axis), parts)
    self._part_weights = jax.device_put(
        _take_rows(self._loss.node_weights.astype(np.float32), self.partition.grid.nodes), parts
    )

  def exchanged_bytes_per_step(self, batch_size: int, num_steps: int) -> int:
    """Bytes one device sends in one loss+grad of a `num_steps` rollout
    (forward and backward, without recomputation by remat)."""
    rows = exchanged_rows(self.partition, self.model.gnn_msg_steps)
    row_bytes = batch_size * self.model.latent_size * jnp.dtype(self._dtype).itemsize
    return 2 * num_steps * rows * row_bytes

  def _to_parts(self, x: jax.Array) -> jax.Array:
    """[..., n_grid] -> [..., K * part size], zero padding at the end (none
    for a batch `place_batch` padded already)."""
    pad = self.partition.grid.nodes.size - x.shape[-1]
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])

  def place_batch(self, batch: Batch):
    """(host batch padded to K latitude bands, the shardings that give each
    device its band): for `train.sharding.to_global`.

    Arrays with a latitude axis (all but day/year progress) get zero rows at
    the end, as `_to_parts` would add inside the step, and split along it
    over the space axis; all split over the data axis.
    """
    n_lat = self._grid_shape[0]
    pad = self._padded_lat - n_lat

    def has_lat(path):
      return not str(path[-1].key).startswith(("day_progress", "year_progress"))

    def padded(path, x):
      x = np.asarray(x)
      if not has_lat(path) or not pad:
        return x
      if x.shape[-2] != n_lat:
        raise ValueError(
            f"batch {jax.tree_util.keystr(path)}: {x.shape[-2]} latitudes, not {n_lat}"
        )
      return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)])

    def sharding(path, x):
      if not has_lat(path):
        return NamedSharding(self.mesh, P(self.data_axis))
      spec = [self.data_axis] + [None] * (x.ndim - 3) + [self.space_axis, None]
      return NamedSharding(self.mesh, P(*spec))

    batch = jax.tree_util.tree_map_with_path(padded, batch)
    return batch, jax.tree_util.tree_map_with_path(sharding, batch)

  def loss(self, params, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`Predictor.loss`, computed split over the mesh (same value)."""
    for name in self.task.target_variables:
      if name not in batch.targets:
        raise KeyError(f"target variable {name!r} is missing from the targets")
    first = batch.targets[self.task.target_variables[0]]
    num_steps = first.shape[1]
    # Placed by `place_batch`: padded latitude rows (else as loaded).
    grid_shape = (first.shape[-2], self._grid_shape[1])
    inputs, forcings = self._stack(batch.inputs, batch.forcings, num_steps, grid_shape)
    targets = channels.stack_steps(
        {n: jnp.asarray(batch.targets[n], jnp.float32) for n in self.task.target_variables},
        grid_shape,
    )
    space, data = self.space_axis, self.data_axis
    local = jax.shard_map(
        lambda *args: self._local_loss(num_steps, *args),
        mesh=self.mesh,
        in_specs=(
            P(),
            P(space),
            P(space),
            P(data, None, space),
            P(None, data, None, space),
            P(None, data, None, space),
        ),
        out_specs=P(),
    )
    return local(
        params,
        self._parts,
        self._part_weights,
        self._to_parts(inputs),
        self._to_parts(targets),
        self._to_parts(forcings),
    )

  def rollout(self, params, inputs, forcings, num_steps: int) -> dict[str, jax.Array]:
    """`Predictor.rollout`, each step split over the mesh (same values): a
    forecast whose example does not fit one device."""
    inputs, forcings = self._stack(inputs, forcings, num_steps)
    space, data = self.space_axis, self.data_axis
    if data is not None and inputs.shape[0] % self.mesh.shape[data]:
      data = None  # E.g. one forecast: each data row computes it.
    local = jax.shard_map(
        lambda *args: self._local_rollout(num_steps, *args),
        mesh=self.mesh,
        in_specs=(P(), P(space), P(data, None, space), P(None, data, None, space)),
        out_specs=P(None, data, None, space),
    )
    predictions = local(params, self._parts, self._to_parts(inputs), self._to_parts(forcings))
    return channels.unstack_steps(
        predictions[..., : self._num_grid],
        self.task.target_variables,
        self.task.num_levels,
        self._grid_shape,
    )

  def _local_rollout(self, num_steps, params, graph, inputs, forcings):
    """One device's part of `rollout`: [T, B, C_out, part size]."""
    graph = jax.tree.map(lambda x: x[0], graph)

    def body(inputs, forcing):
      parts = (
          self._norm.inputs(inputs).astype(self._dtype),
          self._norm.forcings(forcing).astype(self._dtype),
      )
      outputs = self._net.apply({"params": params}, graph, parts)
      predictions = self._norm.prediction(outputs, inputs)
      return self._layout.next_inputs(inputs, predictions, forcing), predictions

    _, predictions = self._scan(body, inputs, forcings, num_steps)
    return predictions

  def _local_loss(self, num_steps, params, graph, weights, inputs, targets, forcings):
    """One device's part: the body of `Predictor.loss` on its nodes."""
    graph = jax.tree.map(lambda x: x[0], graph)
    weights = weights[0]

    def body(inputs, step):
      target, forcing = step
      parts = (
          self._norm.inputs(inputs).astype(self._dtype),
          self._norm.forcings(forcing).astype(self._dtype),
      )
      outputs = self._net.apply({"params": params}, graph, parts)
      norm_target = self._norm.target(target, inputs).astype(outputs.dtype)
      per_channel = jax.lax.psum(
          self._loss.channel_means(outputs, norm_target, weights, self._num_grid), self.space_axis
      )
      loss = self._loss.from_channel_means(per_channel)
      predictions = self._norm.prediction(outputs, inputs)
      return self._layout.next_inputs(inputs, predictions, forcing), loss

    _, (total, per_variable) = self._scan(body, inputs, (targets, forcings), num_steps)
    mean = lambda x: jnp.mean(jnp.mean(x, axis=0))
    out = mean(total), {k: mean(v) for k, v in per_variable.items()}
    if self.data_axis is not None:
      out = jax.lax.pmean(out, self.data_axis)
    return out
