"""MLP and LayerNorm blocks with the published parameter layout and numerics.

Flax modules here only declare parameters (names, shapes, initialisers as in
Haiku's `hk.nets.MLP` and `hk.LayerNorm`); the maths lives in pure functions
taking those parameter dicts. Keeping the maths pure lets the model wrap any
piece in `jax.checkpoint` or `lax.scan` (edge blocking, remat) without Flax
lifted transforms, and keeps parameter names one-to-one with the published
checkpoint.

Parameters stay float32; `apply_*` casts them to the activations' dtype at use,
as the published bfloat16 casting wrapper does.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LAYER_NORM_EPS = 1e-5  # hk.LayerNorm default.


def _mlp_init(in_features: int, sizes: Sequence[int]):
  """Haiku Linear init: truncated normal, stddev 1/sqrt(fan_in); zero bias."""

  def init(rng):
    params = {}
    fan_in = in_features
    for i, size in enumerate(sizes):
      rng, key = jax.random.split(rng)
      stddev = 1.0 / np.sqrt(fan_in)
      # hk.initializers.TruncatedNormal: cut at +-2 stddev, not rescaled.
      w = stddev * jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, size), jnp.float32)
      params[f"linear_{i}"] = {"b": jnp.zeros((size,), jnp.float32), "w": w}
      fan_in = size
    return params

  return init


def _layer_norm_init(size: int):
  def init(unused_rng):
    return {"offset": jnp.zeros((size,), jnp.float32), "scale": jnp.ones((size,), jnp.float32)}

  return init


class BlockParams(nn.Module):
  """Declares named MLP (+ LayerNorm) blocks of one graph network.

  Attributes:
    blocks: (name, in_features, output_size, layer_norm) per block. Creates
      params `<name>_mlp/linear_i/{w,b}` and, if layer_norm,
      `<name>_layer_norm/{scale,offset}`.
    hidden_size: width of the hidden layers.
    hidden_layers: number of hidden layers per MLP.
  """

  blocks: tuple[tuple[str, int, int, bool], ...]
  hidden_size: int
  hidden_layers: int

  @nn.compact
  def __call__(self) -> dict:
    params = {}
    for name, in_features, out_size, layer_norm in self.blocks:
      sizes = [self.hidden_size] * self.hidden_layers + [out_size]
      params[f"{name}_mlp"] = self.param(f"{name}_mlp", _mlp_init(in_features, sizes))
      if layer_norm:
        params[f"{name}_layer_norm"] = self.param(f"{name}_layer_norm", _layer_norm_init(out_size))
    return params


def swish(x: jax.Array) -> jax.Array:
  return jax.nn.swish(x)


def dot_f32(x: jax.Array, w: jax.Array) -> jax.Array:
  """x @ w accumulated in float32, with w rounded to x's dtype first.

  On CPU (no bfloat16 matmul units) the operands are upcast so that XLA uses
  its fast float32 kernels; bfloat16 dots there are emulated and their weight
  gradients decomposed into slow windowed reductions. The values are the same
  bfloat16 products summed in float32. Elsewhere the dot takes bfloat16
  operands with float32 accumulation.
  """
  w = w.astype(x.dtype)
  if x.dtype != jnp.float32 and jax.default_backend() == "cpu":
    return jnp.dot(x.astype(jnp.float32), w.astype(jnp.float32))
  return jnp.dot(x, w, preferred_element_type=jnp.float32)


def channel_major_dot(x: jax.Array, w: jax.Array) -> jax.Array:
  """[B, C, N] @ w [C, L] -> [N, B, L] in float32 (as dot_f32).

  Contracting the channel-major stack directly moves only the [N, B, L]
  result into node-major order, not the (usually wider) [B, C, N] input.
  """
  w = w.astype(x.dtype)
  if x.dtype != jnp.float32 and jax.default_backend() == "cpu":
    x, w = x.astype(jnp.float32), w.astype(jnp.float32)
  return jnp.einsum("bcn,cl->nbl", x, w, preferred_element_type=jnp.float32)


def linear_to_channel_major(p: dict, x: jax.Array) -> jax.Array:
  """Linear layer on [N, B, L] written as channel-major [B, out, N]."""
  w = p["w"].astype(x.dtype)
  if x.dtype != jnp.float32 and jax.default_backend() == "cpu":
    x, w = x.astype(jnp.float32), w.astype(jnp.float32)
  y = jnp.einsum("nbl,lc->bcn", x, w, preferred_element_type=jnp.float32)
  b = p["b"].astype(x.dtype).astype(jnp.float32)
  return (y + b[:, None]).astype(x.dtype)


def rowwise(fn):
  """Applies fn(p, x) to x flattened to [rows, features].

  XLA:CPU reduces over one leading axis much faster than over several (bias,
  scale and weight gradients of [edges, batch, latent] were 3x slower).
  """

  def apply(p, x, *args):
    y = fn(p, x.reshape(-1, x.shape[-1]), *args)
    return y.reshape(x.shape[:-1] + y.shape[-1:])

  return apply


@rowwise
def linear(p: dict, x: jax.Array) -> jax.Array:
  """x @ w + b (params rounded to x's dtype, as published), summed in float32."""
  return finish_first_layer({"linear_0": p}, dot_f32(x, p["w"]), x.dtype)


@rowwise
def mlp_tail(p: dict, h: jax.Array) -> jax.Array:
  """The MLP after the first linear layer's pre-activation `h`."""
  n = len(p)
  for i in range(1, n):
    h = linear(p[f"linear_{i}"], swish(h))
  return h


def mlp(p: dict, x: jax.Array) -> jax.Array:
  """hk.nets.MLP: linear layers with swish between them, none at the end."""
  return mlp_tail(p, linear(p["linear_0"], x))


@rowwise
def layer_norm(p: dict, x: jax.Array) -> jax.Array:
  """hk.LayerNorm(axis=-1, eps=1e-5), computed in float32, output in x.dtype.

  The published model runs it in bfloat16 with bfloat16-rounded scale and
  offset; rounding the params the same way and the output once keeps the
  results within bfloat16 rounding of it, and keeps XLA:CPU on fast float32
  reductions for the parameter gradients.
  """
  dtype = x.dtype
  x = x.astype(jnp.float32)
  mean = jnp.mean(x, axis=-1, keepdims=True)
  variance = jnp.var(x, axis=-1, keepdims=True)
  scale = p["scale"].astype(dtype).astype(jnp.float32)
  offset = p["offset"].astype(dtype).astype(jnp.float32)
  inv = scale * jax.lax.rsqrt(variance + LAYER_NORM_EPS)
  return (inv * (x - mean) + offset).astype(dtype)


@rowwise
def first_layer_part(p: dict, x: jax.Array, start: int, stop: int | None) -> jax.Array:
  """x @ w[start:stop] of the first layer, accumulated in float32.

  The first layer of an MLP on concat[a, b, c] equals the sum of each part
  times its rows of w; computing the parts separately lets node parts be
  computed once per node instead of once per edge.
  """
  return dot_f32(x, p["linear_0"]["w"][start:stop])


@rowwise
def finish_first_layer(p: dict, parts_sum: jax.Array, dtype) -> jax.Array:
  """Adds the first layer's bias to the float32 sum of parts; casts to dtype."""
  b = p["linear_0"]["b"].astype(dtype).astype(jnp.float32)
  return (parts_sum + b).astype(dtype)


def mlp_block(params: dict, name: str, x: jax.Array) -> jax.Array:
  """MLP then LayerNorm if the block has one."""
  y = mlp(params[f"{name}_mlp"], x)
  ln = params.get(f"{name}_layer_norm")
  return y if ln is None else layer_norm(ln, y)
