"""AdamW as published, with the learning rate set from the global step.

The rate is an injected hyperparameter rather than a schedule over the
optimiser's own step count: a skipped (non-finite) step leaves the optimiser
state untouched, so its count would fall behind the global step, while the
rate must follow the schedule's position (phase and step within the phase).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from graphcast_fdl.train.config import OptimizerConfig
from graphcast_fdl.train.schedule import LearningRate, Schedule


def phase_learning_rate(lr: LearningRate, num_steps: int) -> optax.Schedule:
  """The rate at step `i` of a phase of `num_steps` steps (i counts from 0).

  Warm-up is linear from `init_value` to `peak` over `warmup_steps`; the rest
  of the phase then decays to `end_value`: half-cosine, linear, or constant
  (which stays at `peak`).
  """
  decay_steps = max(num_steps - lr.warmup_steps, 1)
  if lr.decay == "cosine":
    decay = optax.cosine_decay_schedule(
        lr.peak, decay_steps, alpha=lr.end_value / lr.peak if lr.peak else 0.0
    )
  elif lr.decay == "linear":
    decay = optax.linear_schedule(lr.peak, lr.end_value, decay_steps)
  else:
    decay = optax.constant_schedule(lr.peak)
  if not lr.warmup_steps:
    return decay
  warmup = optax.linear_schedule(lr.init_value, lr.peak, lr.warmup_steps)
  return optax.join_schedules([warmup, decay], [lr.warmup_steps])


def schedule_learning_rate(schedule: Schedule) -> optax.Schedule:
  """Global step -> rate; each phase's schedule starts at its first step."""
  spans = schedule.spans()
  parts = [phase_learning_rate(s.phase.learning_rate, s.phase.num_steps) for s in spans]
  return optax.join_schedules(parts, [s.start for s in spans[1:]])


def weight_decay_mask(params) -> object:
  """True on weight matrices (ndim >= 2); biases and norm scales are not decayed."""
  return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
  """Global-norm clipping, then AdamW with an injected `learning_rate`.

  Set the rate before each update with `set_learning_rate`; it starts at 0.
  """

  def clipped_adamw(learning_rate):
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip_norm),
        optax.adamw(
            learning_rate,
            b1=config.b1,
            b2=config.b2,
            eps=config.eps,
            weight_decay=config.weight_decay,
            mask=weight_decay_mask,
        ),
    )

  return optax.inject_hyperparams(clipped_adamw)(learning_rate=0.0)


def set_learning_rate(opt_state, learning_rate) -> object:
  """`opt_state` with its injected rate replaced (a scalar, traced or not)."""
  return optax.tree_utils.tree_set(opt_state, learning_rate=jnp.asarray(learning_rate, jnp.float32))


def get_learning_rate(opt_state) -> jax.Array:
  return optax.tree_utils.tree_get(opt_state, "learning_rate")


LearningRateFn = Callable[[jax.Array], jax.Array]
