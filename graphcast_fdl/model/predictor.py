"""GraphCast as a pure-function predictor: init, loss, autoregressive rollout.

Stacks what the published wrappers do, in their order:
  autoregressive rollout (lax.scan, predictions fed back as inputs, forcings
  from the batch) -> normalisation (inputs by mean/std, targets as residuals)
  -> bfloat16 casting (params stay float32) -> GraphCastNet.
All methods are pure and jittable; the graphs are constants.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from graphcast_fdl.graph import graphs_for_model
from graphcast_fdl.model import channels
from graphcast_fdl.model import gnn
from graphcast_fdl.model import losses
from graphcast_fdl.model import rollout as rollout_lib
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.model.graphcast import GraphCastNet
from graphcast_fdl.model.normalization import ChannelNormalization
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl import task as task_lib
from graphcast_fdl.task import TaskConfig

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def layout(task: TaskConfig) -> channels.ChannelLayout:
  return channels.ChannelLayout(
      task.input_variables,
      task.target_variables,
      task.forcing_variables,
      task.num_levels,
      task_lib.input_frames(task),
  )


def network(model: ModelConfig, task: TaskConfig) -> GraphCastNet:
  chans = layout(task)
  return GraphCastNet(
      model=model,
      num_input_channels=len(chans.inputs) + len(chans.forcings),
      num_outputs=len(chans.outputs),
  )


def param_shapes(model: ModelConfig, task: TaskConfig):
  """Abstract float32 params (ShapeDtypeStructs), allocating nothing."""
  net = network(model, task)
  return jax.eval_shape(
      lambda: net.init(jax.random.PRNGKey(0), method=GraphCastNet.param_dicts)["params"]
  )


class Predictor:
  """One GraphCast model with its task, statistics and graphs."""

  def __init__(self, model: ModelConfig, task: TaskConfig, stats: NormalizationStats, graphs=None):
    if graphs is None:
      graphs = graphs_for_model(model)
    self.model = model
    self.task = task
    self._dtype = DTYPES[model.precision]
    # Device arrays, so that jit passes them as buffers instead of inlining
    # numpy constants into the program at every use.
    self._graph = jax.tree.map(jnp.asarray, gnn.graph_arrays(graphs))
    self._grid_shape = (len(graphs.grid_lat), len(graphs.grid_lon))
    self._layout = layout(task)
    self._norm = ChannelNormalization(stats, self._layout, task.pressure_levels)
    self._loss = losses.WeightedMSE(
        self._layout, graphs.grid_lat, len(graphs.grid_lon), task.pressure_levels
    )
    self._net = network(model, task)

  @property
  def grid_shape(self) -> tuple[int, int]:
    """(num_lat, num_lon) of the grid the graphs were built for."""
    return self._grid_shape

  def init_params(self, rng: jax.Array, batch: Batch | None = None):
    """Float32 params (published shapes and names). The batch is not needed:
    shapes follow from the configs."""
    del batch
    return self._net.init(rng, method=GraphCastNet.param_dicts)["params"]

  def _check(
      self, inputs: Mapping[str, jax.Array], forcings: Mapping[str, jax.Array], num_steps: int
  ):
    for name in self.task.input_variables:
      if name not in inputs:
        raise KeyError(f"input variable {name!r} is missing from the inputs")
      frames = self._layout.num_frames
      if name not in self._layout.static and inputs[name].shape[1] != frames:
        raise ValueError(
            f"input variable {name!r} has {inputs[name].shape[1]}"
            f" frames, the task's input_duration implies {frames}"
        )
    for name in self.task.forcing_variables:
      if name not in forcings:
        raise KeyError(f"forcing variable {name!r} is missing from the forcings")
      if forcings[name].shape[1] < num_steps:
        raise ValueError(
            f"forcing variable {name!r} has " f"{forcings[name].shape[1]} steps, need {num_steps}"
        )

  def _stack(self, inputs, forcings, num_steps, grid_shape=None):
    """Batch-layout dicts -> [B, C_in, n_grid], [T, B, C_f, n_grid] (the
    arrays' grid may be `grid_shape`, e.g. padded with latitude rows)."""
    self._check(inputs, forcings, num_steps)
    grid_shape = grid_shape or self._grid_shape
    stacked_inputs = channels.stack_inputs(
        {n: jnp.asarray(inputs[n], jnp.float32) for n in self.task.input_variables},
        self._layout.static,
        grid_shape,
    )
    stacked_forcings = channels.stack_steps(
        {
            n: jnp.asarray(forcings[n], jnp.float32)[:, :num_steps]
            for n in self.task.forcing_variables
        },
        grid_shape,
    )
    return stacked_inputs, stacked_forcings

  def _one_step(self, params, inputs: jax.Array, forcings: jax.Array):
    """Normalised outputs [B, C_out, n_grid] (compute dtype) from raw stacked
    inputs [B, C_in, n_grid] and forcings [B, C_f, n_grid] (float32)."""
    parts = (
        self._norm.inputs(inputs).astype(self._dtype),
        self._norm.forcings(forcings).astype(self._dtype),
    )
    return self._net.apply({"params": params}, self._graph, parts)

  def _scan(self, body, carry, xs, num_steps):
    """lax.scan of body over steps, remat per step and per segment if
    configured (see `RematConfig.rollout_segment`)."""
    remat = self.model.remat
    if remat.rollout_step and num_steps > 1:
      body = jax.checkpoint(body)
    if num_steps == 1:  # No loop: simpler and faster to compile.
      carry, ys = body(carry, jax.tree.map(lambda x: x[0], xs))
      return carry, jax.tree.map(lambda y: y[None], ys)
    k = remat.rollout_segment
    if not 1 < k < num_steps:
      return jax.lax.scan(body, carry, xs, length=num_steps)
    # Segments of k steps, each checkpointed (only its input window is kept),
    # then the remaining num_steps % k steps as a plain scan.
    num_segments, rest = divmod(num_steps, k)
    head = jax.tree.map(
        lambda x: x[: num_segments * k].reshape((num_segments, k) + x.shape[1:]), xs
    )

    @jax.checkpoint
    def segment(carry, segment_xs):
      return jax.lax.scan(body, carry, segment_xs, length=k)

    carry, ys = jax.lax.scan(segment, carry, head, length=num_segments)
    ys = jax.tree.map(lambda y: y.reshape((num_segments * k,) + y.shape[2:]), ys)
    if rest:
      tail = jax.tree.map(lambda x: x[num_segments * k : num_steps], xs)
      carry, tail_ys = jax.lax.scan(body, carry, tail, length=rest)
      ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, tail_ys)
    return carry, ys

  def loss(self, params, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted MSE on normalised residuals, mean over rollout and batch.

    The rollout length is the targets' time dim. Returns (scalar, {target
    name: unweighted per-variable loss}), float32.
    """
    for name in self.task.target_variables:
      if name not in batch.targets:
        raise KeyError(f"target variable {name!r} is missing from the targets")
    num_steps = batch.targets[self.task.target_variables[0]].shape[1]
    remat = self.model.remat
    batch_inputs = batch.inputs
    if remat.host_inputs:  # In host memory: one transient copy (no-op on device arrays).
      batch_inputs = jax.device_put(batch_inputs, jax.memory.Space.Device)
    inputs, forcings = self._stack(batch_inputs, batch.forcings, num_steps)
    targets = {n: batch.targets[n] for n in self.task.target_variables}

    def step(params, inputs, x, targets):
      t, forcing = x

      def target_at(x):
        x = jax.lax.dynamic_slice_in_dim(x, t, 1, 1)
        # With `host_targets` the batch's targets are in host memory: only
        # this step's are copied to the device (a no-op on device arrays).
        return jax.device_put(x, jax.memory.Space.Device) if remat.host_targets else x

      # Each step stacks only its own targets: stacking every step up front
      # held a second copy of all targets (0.9 GB per step at 0.25 deg).
      target = channels.stack_steps(
          {n: jnp.asarray(target_at(x), jnp.float32) for n, x in targets.items()},
          self._grid_shape,
      )[0]
      outputs = self._one_step(params, inputs, forcing)
      base = self._norm.residual_base(inputs)
      norm_target = self._norm.target(target, base).astype(outputs.dtype)
      loss = self._loss(outputs, norm_target)
      return self._norm.prediction(outputs, base), loss

    def advance(inputs, predictions, x):
      return self._layout.next_inputs(inputs, predictions, x[1])

    xs = (jnp.arange(num_steps), forcings)
    if remat.rollout_step and remat.rollout_saves == "prediction" and num_steps > 1:
      total, per_variable = rollout_lib.scan_keeping_predictions(
          step,
          advance,
          params,
          inputs,
          xs,
          targets,
          num_frames=self._layout.num_frames,
          offload=remat.offload_rollout,
      )
    else:

      def body(inputs, x):
        predictions, loss = step(params, inputs, x, targets)
        return advance(inputs, predictions, x), loss

      _, (total, per_variable) = self._scan(body, inputs, xs, num_steps)
    # [T, B]: mean over rollout steps, then over the batch.
    mean = lambda x: jnp.mean(jnp.mean(x, axis=0))
    return mean(total), {k: mean(v) for k, v in per_variable.items()}

  def persistence_loss(self, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`loss` of persistence, the bar a trained model must clear.

    Persistence forecasts every target time with the last input frame (a
    target that is not an input, with its mean). In normalised-residual space
    that is an output of zero at every step, the fed-back frame never
    changing, so this is the model's weighted loss of zero outputs against
    each target's residual from the last input; reduced like `loss`.
    """
    num_steps = batch.targets[self.task.target_variables[0]].shape[1]
    inputs, _ = self._stack(batch.inputs, batch.forcings, num_steps)
    targets = channels.stack_steps(
        {n: jnp.asarray(batch.targets[n], jnp.float32) for n in self.task.target_variables},
        self._grid_shape,
    )

    def one_step(target):
      norm_target = self._norm.target(target, self._norm.residual_base(inputs))
      return self._loss(jnp.zeros_like(norm_target), norm_target)

    total, per_variable = jax.lax.map(one_step, targets)  # [T, B]
    mean = lambda x: jnp.mean(jnp.mean(x, axis=0))
    return mean(total), {k: mean(v) for k, v in per_variable.items()}

  def rollout(
      self,
      params,
      inputs: Mapping[str, jax.Array],
      forcings: Mapping[str, jax.Array],
      num_steps: int,
  ) -> dict[str, jax.Array]:
    """Predictions {name: [B, num_steps, (level,) lat, lon]} in float32."""
    inputs, forcings = self._stack(inputs, forcings, num_steps)

    def body(inputs, forcing):
      outputs = self._one_step(params, inputs, forcing)
      predictions = self._norm.prediction(outputs, self._norm.residual_base(inputs))
      return self._layout.next_inputs(inputs, predictions, forcing), predictions

    _, predictions = self._scan(body, inputs, forcings, num_steps)
    return channels.unstack_steps(
        predictions, self.task.target_variables, self.task.num_levels, self._grid_shape
    )
