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


# A hand-written module: a 7-trip while loop whose body runs one fusion
# (tanh of f32[4,8]: 128 B in, 128 B out), copies its result to host memory
# (S(5)) and bumps the s32 counter.
_MODULE = """HloModule m

%fused (p: f32[4,8]) -> f32[4,8] {
  %p = f32[4,8]{1,0} parameter(0)
  ROOT %t = f32[4,8]{1,0} tanh(%p)
}

%body (s: (s32[], f32[4,8])) -> (s32[], f32[4,8]) {
  %s = (s32[], f32[4,8]{1,0}) parameter(0)
  %i = s32[] get-tuple-element(%s), index=0
  %x = f32[4,8]{1,0} get-tuple-element(%s), index=1
  %f = f32[4,8]{1,0:T(8,128)} fusion(%x), kind=kLoop, calls=%fused
  %h = f32[4,8]{1,0:T(8,128)S(5)} copy(%f)
  %one = s32[] constant(1)
  %n = s32[] add(%i, %one)
  ROOT %r = (s32[], f32[4,8]{1,0}) tuple(%n, %f)
}

%cond (c: (s32[], f32[4,8])) -> pred[] {
  %c = (s32[], f32[4,8]{1,0}) parameter(0)
  %ci = s32[] get-tuple-element(%c), index=0
  %k = s32[] constant(7)
  ROOT %lt = pred[] compare(%ci, %k), direction=LT
}

ENTRY %main (a: f32[4,8]) -> f32[4,8] {
  %a = f32[4,8]{1,0} parameter(0)
  %z = s32[] constant(0)
  %t0 = (s32[], f32[4,8]{1,0}) tuple(%z, %a)
  %w = (s32[], f32[4,8]{1,0}) while(%t0), condition=%cond, body=%body
  %o = f32[4,8]{1,0} get-tuple-element(%w), index=1
  ROOT %e = f32[4,8]{1,0} exponential(%o)
}
"""


def test_bytes_count_unfused_instructions_with_loop_bodies_times_trips():
  totals = hlo_loops.loop_totals(_MODULE)
  body = (128 + 128) + (128 + 128) + (4 + 4 + 4)  # fusion, copy to host, add
  entry = 128 + 128  # the exponential after the loop
  assert totals.bytes_once == body + entry
  assert totals.bytes_weighted == 7 * body + entry
  assert totals.host_bytes_weighted == 7 * 128  # one f32[4,8] per trip to S(5)
  assert totals.flops_weighted == totals.flops_once == 0.0


def test_a_loop_with_a_hidden_bound_counts_the_trips_it_is_told():
  x = jnp.ones((256, 128), jnp.float32)

  def fn(x):  # The rollout backward's loop: its bound is hidden from XLA.
    bound = jax.lax.optimization_barrier(jnp.int32(5))
    body = lambda s: (s[0] + 1, jnp.tanh(s[1]) @ jnp.ones((128, 128)))
    return jax.lax.while_loop(lambda s: s[0] < bound, body, (jnp.int32(0), x))[1].sum()

  text = _compiled_text(fn, x)
  once = hlo_loops.loop_totals(text)
  told = hlo_loops.loop_totals(text, unknown_trips=5)
  assert once.flops_weighted == once.flops_once == 2 * 256 * 128 * 128
  assert told.flops_weighted == 5 * once.flops_once


def test_bytes_of_a_compiled_scan_grow_with_its_trips():
  x = jnp.ones((256, 128), jnp.float32)

  def fn(x, n):
    return jax.lax.scan(lambda h, _: (jnp.tanh(h) * 2.0, None), x, None, length=n)[0].sum()

  three = hlo_loops.loop_totals(_compiled_text(lambda x: fn(x, 3), x))
  nine = hlo_loops.loop_totals(_compiled_text(lambda x: fn(x, 9), x))
  assert three.bytes_once == pytest.approx(nine.bytes_once)  # each body once
  # Each trip reads and writes the f32[256,128] carry at least once.
  per_trip = (nine.bytes_weighted - three.bytes_weighted) / 6
  assert per_trip >= 2 * 256 * 128 * 4
  assert three.bytes_weighted == pytest.approx(three.bytes_once + 2 * per_trip)
  assert three.host_bytes_weighted == 0.0
