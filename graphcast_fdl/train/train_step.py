"""The training state and the jitted train and eval steps.

A step whose loss, gradient, updated parameters or updated optimiser state is
not finite changes nothing but its counters: parameters and optimiser state
keep their values, the global step advances (the step's batch is consumed, so
data order stays a function of the step). Checking the updated state, not
only the loss and gradients, matters: a huge learning rate turns finite
gradients into infinite parameters, and those must never reach a checkpoint.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from graphcast_fdl.train import optimizer as optimizer_lib
from graphcast_fdl.train import sharding as sharding_lib

# (params, batch) -> (scalar loss, {variable: scalar loss})
LossFn = Callable[[Any, Any], tuple[jax.Array, dict]]


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs besides the config.

  Attributes:
    step: global step: optimiser steps taken (including skipped ones) across
      all phases; it fixes the phase, rollout length, rate and data position.
    params: model parameters.
    opt_state: optimiser state (clipping + AdamW + injected learning rate).
    rng: PRNG key (uint32[2]), split once per step.
    nonfinite_in_a_row: consecutive skipped steps up to this one.
    nonfinite_total: skipped steps in the whole run.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  nonfinite_in_a_row: jax.Array
  nonfinite_total: jax.Array


def create_state(
    params, tx: optax.GradientTransformation, rng: jax.Array, step: int = 0
) -> TrainState:
  return TrainState(
      step=jnp.asarray(step, jnp.int32),
      params=params,
      opt_state=tx.init(params),
      rng=rng,
      nonfinite_in_a_row=jnp.zeros((), jnp.int32),
      nonfinite_total=jnp.zeros((), jnp.int32),
  )


def state_shardings(abstract_state: TrainState, mesh, shard_params: bool):
  """Shardings for every leaf: counters and rng replicated."""
  rep = sharding_lib.replicated(mesh)
  return abstract_state.replace(
      step=rep,
      rng=rep,
      nonfinite_in_a_row=rep,
      nonfinite_total=rep,
      params=sharding_lib.state_shardings(abstract_state.params, mesh, shard_params),
      opt_state=sharding_lib.state_shardings(abstract_state.opt_state, mesh, shard_params),
  )


def _all_finite(tree) -> jax.Array:
  leaves = [
      jnp.all(jnp.isfinite(x))
      for x in jax.tree.leaves(tree)
      if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(
    loss_fn: LossFn, tx: optax.GradientTransformation, learning_rate_fn: optax.Schedule
):
  """(state, batch) -> (state, metrics); metrics are scalars and a per-variable dict."""

  def train_step(state: TrainState, batch):
    (loss, per_variable), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch)
    learning_rate = learning_rate_fn(state.step)
    opt_state = optimizer_lib.set_learning_rate(state.opt_state, learning_rate)
    updates, new_opt_state = tx.update(grads, opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    finite = (
        jnp.isfinite(loss)
        & _all_finite(grads)
        & _all_finite(new_params)
        & _all_finite(new_opt_state)
    )
    keep = lambda new, old: jax.tree.map(  # pylint: disable=g-long-lambda
        lambda a, b: jnp.where(finite, a, b), new, old
    )
    skipped = (~finite).astype(jnp.int32)
    rng, _ = jax.random.split(state.rng)
    new_state = state.replace(
        step=state.step + 1,
        params=keep(new_params, state.params),
        opt_state=keep(new_opt_state, state.opt_state),
        rng=rng,
        nonfinite_in_a_row=(state.nonfinite_in_a_row + 1) * skipped,
        nonfinite_total=state.nonfinite_total + skipped,
    )
    metrics = {
        "loss": loss,
        "per_variable": per_variable,
        "grad_norm": optax.global_norm(grads),
        "learning_rate": learning_rate,
        "finite": finite,
    }
    return new_state, metrics

  return train_step


def jit_train_step(
    train_step,
    shardings: TrainState,
    mesh,
    batch_shardings=None,
    host_targets: bool = False,
    host_inputs: bool = False,
):
  """The step jitted with explicit shardings; the input state is donated.

  `batch_shardings`: how batches arrive (default: split over the data axis;
  `model.spatial.SpatialPredictor.batch_shardings` splits them by space too).
  `host_targets`, `host_inputs`: with the default shardings, the batch's
  targets / input frames are taken in pinned host memory (`RematConfig`;
  place them with `sharding.train_batch_sharding`).
  """
  rep = sharding_lib.replicated(mesh)
  if batch_shardings is None:
    batch_shardings = sharding_lib.train_batch_sharding(mesh, host_targets, host_inputs)
  return jax.jit(
      train_step,
      in_shardings=(shardings, batch_shardings),
      out_shardings=(shardings, rep),
      donate_argnums=(0,),
  )


def jit_eval_step(loss_fn: LossFn, params_shardings, mesh, batch_shardings=None):
  """(params, batch) -> (loss, per_variable), jitted like the train step
  (`batch_shardings`: default split over the data axis)."""
  rep = sharding_lib.replicated(mesh)
  if batch_shardings is None:
    batch_shardings = sharding_lib.batch_sharding(mesh)
  return jax.jit(loss_fn, in_shardings=(params_shardings, batch_shardings), out_shardings=rep)
