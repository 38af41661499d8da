"""Learning rate per phase, weight-decay mask, AdamW and clipping as published."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from graphcast_fdl.train import config
from graphcast_fdl.train import optimizer
from graphcast_fdl.train import schedule as schedule_lib


def _rates(schedule, steps):
  fn = optimizer.schedule_learning_rate(schedule)
  return [float(fn(s)) for s in steps]


def test_published_schedule_rates_at_landmarks():
  rates = _rates(
      schedule_lib.published(), [0, 500, 1000, 1000 + 149_500, 299_999, 300_000, 305_500, 310_999]
  )
  np.testing.assert_allclose(
      rates, [0, 5e-4, 1e-3, 5e-4, 0, 3e-7, 3e-7, 3e-7], rtol=1e-5, atol=1e-9
  )


def test_each_phase_schedule_starts_at_its_first_step():
  warm = lambda name: schedule_lib.Phase(  # pylint: disable=g-long-lambda
      name,
      10,
      learning_rate=schedule_lib.LearningRate(
          peak=1.0, warmup_steps=4, decay="linear", end_value=0.5
      ),
  )
  rates = _rates(schedule_lib.Schedule([warm("a"), warm("b")]), [0, 2, 4, 7, 10, 12, 14, 17])
  np.testing.assert_allclose(rates, [0, 0.5, 1, 0.75, 0, 0.5, 1, 0.75], rtol=1e-6)


def test_weight_decay_mask_selects_matrices_only():
  params = {
      "dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
      "norm": {"scale": jnp.ones(2)},
  }
  assert optimizer.weight_decay_mask(params) == {
      "dense": {"kernel": True, "bias": False},
      "norm": {"scale": False},
  }


def _update(tx, grads, params, lr):
  state = optimizer.set_learning_rate(tx.init(params), lr)
  return tx.update(grads, state, params)[0]


def test_matches_optax_adamw_and_decays_only_weights():
  cfg = config.OptimizerConfig()
  params = {"w": jnp.full((3, 2), 2.0), "b": jnp.full(2, 2.0)}
  grads = {"w": jnp.full((3, 2), 0.1), "b": jnp.full(2, 0.1)}
  ours = _update(optimizer.make_optimizer(cfg), grads, params, 1e-2)
  ref = optax.adamw(1e-2, b1=0.9, b2=0.95, weight_decay=0.1, mask=optimizer.weight_decay_mask)
  expected = ref.update(grads, ref.init(params), params)[0]
  jax.tree.map(np.testing.assert_allclose, ours, expected)
  # Adam's first step is -lr * sign(g); decay adds -lr * 0.1 * w on w only.
  np.testing.assert_allclose(ours["b"], -1e-2, rtol=1e-5)
  np.testing.assert_allclose(ours["w"], -1e-2 * (1 + 0.1 * 2.0), rtol=1e-5)


def test_gradients_clipped_at_global_norm_32():
  # Adam's first update is -lr * g / (|g| + eps); a large eps keeps |g| in it.
  cfg = config.OptimizerConfig(weight_decay=0.0, eps=1000.0)
  tx = optimizer.make_optimizer(cfg)
  params = {"w": jnp.zeros((2, 2))}
  huge = {"w": jnp.full((2, 2), 1000.0)}  # global norm 2000 -> 32: 16 each
  state = optimizer.set_learning_rate(tx.init(params), 1.0)
  np.testing.assert_allclose(
      tx.update(huge, state, params)[0]["w"], -16.0 / (16.0 + 1000.0), rtol=1e-5
  )
  assert float(optimizer.get_learning_rate(state)) == 1.0


@pytest.mark.parametrize("decay", ["cosine", "linear", "constant"])
def test_phase_rate_ends_where_asked(decay):
  lr = schedule_lib.LearningRate(
      peak=2.0, warmup_steps=5, decay=decay, init_value=0.0, end_value=0.5
  )
  fn = optimizer.phase_learning_rate(lr, 25)
  assert float(fn(5)) == pytest.approx(2.0)
  assert float(fn(25)) == pytest.approx(2.0 if decay == "constant" else 0.5)
