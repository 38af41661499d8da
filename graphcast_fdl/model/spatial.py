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

The grid parts are bands of whole latitude rows, so each device takes its
rows of the example's [..., lat, lon] arrays (padded with zero rows at the
end to K bands) and stacks its channels itself: no device stacks or holds
the whole example. `place_batch` pads a batch on the host and places each
device's band alone (the trainer's layout; `batch_shardings` describes it).
`rollout` (forecasts, evaluation) runs split the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from graphcast_fdl import graph as graph_lib
from graphcast_fdl.graph import partition as partition_lib
from graphcast_fdl.model import channels
from graphcast_fdl.model import config as config_lib
from graphcast_fdl.model import gnn
from graphcast_fdl.model import halo as halo_lib
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.predictor import Predictor
from graphcast_fdl.task import TaskConfig

SPACE_AXIS = "space"
# Batch arrays without grid dims (`model.channels`: [B, T] and [B, T, lon]).
GRIDLESS = ("year_progress", "day_progress")


def _f32(arrays: dict) -> dict:
  return {n: jnp.asarray(x, jnp.float32) for n, x in arrays.items()}


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


def part_blocks(model: ModelConfig, num_parts: int) -> ModelConfig:
  """`model` with its edge and grid-node blocks cut `num_parts` ways.

  Block sizes count items of the whole graph: a device holding 1 / K of
  the edges runs blocks of 1 / K the size, so that a block's temporaries
  shrink with the split like every other activation (with unscaled blocks
  they dominate: at 1 deg / latent 512, K = 4, blocks of 32,768 edges kept
  0.58 of the unsplit activations, blocks of 8,192 0.33). Parameters do not
  depend on block sizes; results differ only by summation order.
  """
  if num_parts == 1:
    return model
  cut = lambda size: None if size is None else max(1, -(-size // num_parts))
  remat = dataclasses.replace(model.remat, grid_block_size=cut(model.remat.grid_block_size))
  return dataclasses.replace(model, edge_block_size=cut(model.edge_block_size), remat=remat)


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


def _place(tree, sharding: NamedSharding):
  """`tree` on the devices of `sharding`; as numpy when they are only
  described (a compile-only TPU topology, for XLA:TPU's figures without a
  TPU): the compiled program then holds the graph arrays as constants."""
  if not _can_hold_data(sharding.mesh):
    return tree
  return jax.device_put(tree, sharding)


def _can_hold_data(mesh: Mesh) -> bool:
  client = getattr(mesh.devices.flat[0], "client", None)
  return "CompileOnly" not in type(client).__name__


class SpatialPredictor(Predictor):
  """A `Predictor` whose loss and rollout run split over the `space` axis of
  `mesh`.

  Same parameters as `Predictor` (checkpoints are interchangeable); each
  device runs edge and grid-node blocks cut to its part (`part_blocks`). If
  the mesh also has `data_axis`, the batch is split over it as well (a
  rollout's only where its batch divides). `persistence_loss` is split like `loss`.
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
    super().__init__(model, task, stats, graphs)
    remat = model.remat
    if remat.has_rollout_knobs:
      raise ValueError(
          f"model.remat.{' / '.join(config_lib.ROLLOUT_KNOBS_OFF)}: not supported by the"
          " spatially split model (mesh.spatial > 1); keep "
          + ", ".join(f"{k}={v!r}" for k, v in config_lib.ROLLOUT_KNOBS_OFF.items())
      )
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
    # The network each device runs on its part (blocks scaled to the part).
    self._part_net = predictor_lib.network(part_blocks(model, mesh.shape[space_axis]), self.task)
    self._num_grid = graphs.grid_node_features.shape[0]
    # The padding appended to the grid order is all that maps it to parts.
    grid_nodes = self.partition.grid.nodes.reshape(-1)
    assert np.array_equal(grid_nodes[: self._num_grid], np.arange(self._num_grid))
    parts = NamedSharding(mesh, P(space_axis))
    self._parts = _place(graph_parts(graphs, self.partition, space_axis), parts)
    self._part_weights = _place(
        _take_rows(self._loss.node_weights.astype(np.float32), self.partition.grid.nodes), parts
    )

  def graph_arrays(self):
    """(graph parts, node weights): the per-device arrays the loss reads,
    stacked on a leading [K] axis (split over the space axis)."""
    return self._parts, self._part_weights

  @contextlib.contextmanager
  def graph_arrays_as(self, parts, weights):
    """The loss reads these instead while tracing: to compile it with them
    as arguments (as device arrays are passed) where they cannot be placed
    (`analysis.xla_cost` on a described TPU; as numpy they would be
    inlined into the program as constants, 0.1-0.2 GB at 0.25 deg)."""
    saved = self._parts, self._part_weights
    self._parts, self._part_weights = parts, weights
    try:
      yield
    finally:
      self._parts, self._part_weights = saved

  def exchanged_bytes_per_step(self, batch_size: int, num_steps: int) -> int:
    """Bytes one device sends in one loss+grad of a `num_steps` rollout
    (forward and backward, without recomputation by remat)."""
    rows = exchanged_rows(self.partition, self.model.gnn_msg_steps)
    row_bytes = batch_size * self.model.latent_size * jnp.dtype(self._dtype).itemsize
    return 2 * num_steps * rows * row_bytes

  @property
  def _band_rows(self) -> int:
    """Grid rows per part (the partition's bands are whole rows)."""
    return self.partition.grid.size // self._grid_shape[1]

  def _spec(self, name: str, x, band_axis: int) -> P:
    """Examples over the data axis; for an array with grid dims [..., lat,
    lon], also the space axis on dim `band_axis` (-2: lat, -1: lon)."""
    if name.startswith(GRIDLESS):
      return P(self.data_axis)
    spec = [self.data_axis] + [None] * (np.ndim(x) - 1)
    spec[np.ndim(x) + band_axis] = self.space_axis
    return P(*spec)

  def batch_shardings(self, batch: Batch) -> Batch:
    """A NamedSharding per array of `batch` (arrays or shapes, padded by
    `place_batch` or not) to place it with and to jit the train step with:
    examples over the data axis and each grid array's latitude rows over the
    space axis, so that each device holds only its band of each example
    (no exchange: the loss reads its band as it is). The batch must be
    padded to K bands (`place_batch`): 721 rows split into no even bands.
    """

    def place(path, x):
      name = str(path[-1].key)
      return NamedSharding(self.mesh, self._spec(name, x, -2))

    return jax.tree_util.tree_map_with_path(place, batch)

  def place_batch(self, batch: Batch):
    """(batch padded to K latitude bands, `batch_shardings` of it): the
    trainer places training batches so (`train.sharding.to_global`), and
    `analysis.xla_cost` compiles the step for them.

    A host batch (numpy) gets zero rows at the end of its latitude axis, as
    `_pad_rows` would add inside the step; shapes (jax.ShapeDtypeStruct)
    get the padded shape. Day and year progress have no latitude axis.
    """
    n_lat = self._grid_shape[0]
    pad = self.mesh.shape[self.space_axis] * self._band_rows - n_lat

    def padded(path, x):
      if str(path[-1].key).startswith(GRIDLESS) or not pad:
        return x if isinstance(x, jax.ShapeDtypeStruct) else np.asarray(x)
      if x.shape[-2] != n_lat:
        raise ValueError(
            f"batch {jax.tree_util.keystr(path)}: {x.shape[-2]} latitudes, not {n_lat}"
        )
      if isinstance(x, jax.ShapeDtypeStruct):
        shape = x.shape[:-2] + (n_lat + pad, x.shape[-1])
        return jax.ShapeDtypeStruct(shape, x.dtype)
      return np.pad(np.asarray(x), [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)])

    batch = jax.tree_util.tree_map_with_path(padded, batch)
    return batch, self.batch_shardings(batch)

  def _pad_rows(self, name: str, x: jax.Array) -> jax.Array:
    """[..., lat, lon] -> [..., K * band rows, lon]: zero rows at the end."""
    if name.startswith(GRIDLESS):
      return x
    pad = self.mesh.shape[self.space_axis] * self._band_rows - x.shape[-2]
    return jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)])

  def loss(self, params, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`Predictor.loss`, computed split over the mesh (same value)."""
    for name in self.task.target_variables:
      if name not in batch.targets:
        raise KeyError(f"target variable {name!r} is missing from the targets")
    num_steps = batch.targets[self.task.target_variables[0]].shape[1]
    self._check(batch.inputs, batch.forcings, num_steps)
    groups, specs = self._bands(batch, num_steps)
    space = self.space_axis
    local = jax.shard_map(
        lambda *args: self._local_loss(num_steps, *args),
        mesh=self.mesh,
        in_specs=(P(), P(space), P(space)) + specs,
        out_specs=P(),
    )
    return local(params, self._parts, self._part_weights, *groups)

  def persistence_loss(self, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`Predictor.persistence_loss`, split like `loss` (same value): the
    trainer's evaluation reads the same band-placed batches for both."""
    num_steps = batch.targets[self.task.target_variables[0]].shape[1]
    groups, specs = self._bands(batch, num_steps)
    local = jax.shard_map(
        lambda *args: self._local_persistence(num_steps, *args),
        mesh=self.mesh,
        in_specs=(P(self.space_axis),) + specs[:2],
        out_specs=P(),
    )
    return local(self._part_weights, *groups[:2])

  def _bands(self, batch: Batch, num_steps: int):
    """((inputs, targets, forcings) padded to K latitude bands, their
    shard_map specs): each device receives its band of every grid array."""
    groups = (
        {n: batch.inputs[n] for n in self.task.input_variables},
        {n: batch.targets[n] for n in self.task.target_variables},
        {n: batch.forcings[n][:, :num_steps] for n in self.task.forcing_variables},
    )
    groups = tuple({n: self._pad_rows(n, x) for n, x in g.items()} for g in groups)
    specs = tuple({n: self._spec(n, x, -2) for n, x in g.items()} for g in groups)
    return groups, specs

  def _to_parts(self, x: jax.Array) -> jax.Array:
    """[..., n_grid] -> [..., K * part size]: zero padding at the end (whole
    latitude rows)."""
    pad = self.partition.grid.nodes.size - x.shape[-1]
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])

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
      outputs = self._part_net.apply({"params": params}, graph, parts)
      predictions = self._norm.prediction(outputs, self._norm.residual_base(inputs))
      return self._layout.next_inputs(inputs, predictions, forcing), predictions

    _, predictions = self._scan(body, inputs, forcings, num_steps)
    return predictions

  def _band_target(self, targets, t):
    """Step `t` of one device's band of the targets, stacked: [B, C, part]."""
    band = (self._band_rows, self._grid_shape[1])
    return channels.stack_steps(
        _f32({n: jax.lax.dynamic_index_in_dim(x, t, 1) for n, x in targets.items()}), band
    )[0]

  def _band_loss(self, outputs, norm_target, weights):
    """(total [B], per variable) of the whole grid from one device's band."""
    per_channel = jax.lax.psum(
        self._loss.channel_means(outputs, norm_target, weights, self._num_grid), self.space_axis
    )
    return self._loss.from_channel_means(per_channel)

  def _mean_over_steps(self, total, per_variable):
    """Mean over steps and examples (and the data axis if split over it)."""
    mean = lambda x: jnp.mean(jnp.mean(x, axis=0))
    out = mean(total), {k: mean(v) for k, v in per_variable.items()}
    if self.data_axis is not None:
      out = jax.lax.pmean(out, self.data_axis)
    return out

  def _local_persistence(self, num_steps, weights, inputs, targets):
    """One device's band: the body of `Predictor.persistence_loss`."""
    weights = weights[0]
    band = (self._band_rows, self._grid_shape[1])
    inputs = channels.stack_inputs(_f32(inputs), self._layout.static, band)

    def one_step(t):
      norm_target = self._norm.target(
          self._band_target(targets, t), self._norm.residual_base(inputs)
      )
      return self._band_loss(jnp.zeros_like(norm_target), norm_target, weights)

    return self._mean_over_steps(*jax.lax.map(one_step, jnp.arange(num_steps)))

  def _local_loss(self, num_steps, params, graph, weights, inputs, targets, forcings):
    """One device's band: the body of `Predictor.loss` on its nodes."""
    graph = jax.tree.map(lambda x: x[0], graph)
    weights = weights[0]
    band = (self._band_rows, self._grid_shape[1])
    inputs = channels.stack_inputs(_f32(inputs), self._layout.static, band)
    forcings = channels.stack_steps(_f32(forcings), band)

    def body(inputs, step):
      t, forcing = step
      # Only this step's targets are stacked (as in `Predictor.loss`).
      target = self._band_target(targets, t)
      parts = (
          self._norm.inputs(inputs).astype(self._dtype),
          self._norm.forcings(forcing).astype(self._dtype),
      )
      outputs = self._part_net.apply({"params": params}, graph, parts)
      base = self._norm.residual_base(inputs)
      norm_target = self._norm.target(target, base).astype(outputs.dtype)
      loss = self._band_loss(outputs, norm_target, weights)
      predictions = self._norm.prediction(outputs, base)
      return self._layout.next_inputs(inputs, predictions, forcing), loss

    _, (total, per_variable) = self._scan(
        body, inputs, (jnp.arange(num_steps), forcings), num_steps
    )
    return self._mean_over_steps(total, per_variable)
