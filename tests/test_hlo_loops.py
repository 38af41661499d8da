"""Loop-weighted matmul FLOPs of compiled HLO (what XLA counts once)."""

import jax
import jax.numpy as jnp
import pytest

from graphcast_fdl.analysis import hlo_loops


def _compiled_text(fn, *args):
  return jax.jit(fn).lower(*args).compile().as_text()


def test_nested_scans_weigh_their_bodies_by_trips():
  x = jnp.ones((64, 32), jnp.float32)
  w = jnp.ones((32, 32), jnp.float32)

  def inner(h, _):
    return jnp.tanh(h @ w), None

  def outer(h, _):
    h, _ = jax.lax.scan(inner, h, None, length=3)
    return h @ w, None

  def fn(x):
    h, _ = jax.lax.scan(outer, x, None, length=5)
    return (h @ w).sum()

  weighted, once = hlo_loops.matmul_flops(_compiled_text(fn, x))
  one = 2 * 64 * 32 * 32
  assert weighted == pytest.approx(one * (5 * (3 + 1) + 1))
  assert once == pytest.approx(one * 3)  # each body once, as cost_analysis


def test_a_module_without_loops_counts_each_matmul_once():
  a, b = jnp.ones((8, 16)), jnp.ones((16, 4))
  weighted, once = hlo_loops.matmul_flops(_compiled_text(lambda a, b: a @ b, a, b))
  assert weighted == once == 2 * 8 * 16 * 4
  assert hlo_loops.matmul_flops("") == (0.0, 0.0)
