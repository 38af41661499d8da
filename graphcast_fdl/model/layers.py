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
      w = stddev * jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, size),
                                               jnp.float32)
      params[f"linear_{i}"] = {"b": jnp.zeros((size,), jnp.float32), "w": w}
      fan_in = size
    return params

  return init


def _layer_norm_init(size: int):
  def init(unused_rng):
    return {"offset": jnp.zeros((size,), jnp.float32),
            "scale": jnp.ones((size,), jnp.float32)}
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
      params[f"{name}_mlp"] = self.param(
          f"{name}_mlp", _mlp_init(in_features, sizes))
      if layer_norm:
        params[f"{name}_layer_norm"] = self.param(
            f"{name}_layer_norm", _layer_norm_init(out_size))
    return params


def swish(x: jax.Array) -> jax.Array:
  return jax.nn.swish(x)


def linear(p: dict, x: jax.Array) -> jax.Array:
  """x @ w + b in x's dtype (as hk.Linear with params cast to x.dtype)."""
  return jnp.dot(x, p["w"].astype(x.dtype)) + p["b"].astype(x.dtype)


def mlp_tail(p: dict, h: jax.Array) -> jax.Array:
  """The MLP after the first linear layer's pre-activation `h`."""
  n = len(p)
  for i in range(1, n):
    h = linear(p[f"linear_{i}"], swish(h))
  return h


def mlp(p: dict, x: jax.Array) -> jax.Array:
  """hk.nets.MLP: linear layers with swish between them, none at the end."""
  return mlp_tail(p, linear(p["linear_0"], x))


def layer_norm(p: dict, x: jax.Array) -> jax.Array:
  """hk.LayerNorm(axis=-1) with the same op order, in x's dtype."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  variance = jnp.var(x, axis=-1, keepdims=True)
  scale = p["scale"].astype(x.dtype)
  offset = p["offset"].astype(x.dtype)
  eps = jax.lax.convert_element_type(LAYER_NORM_EPS, variance.dtype)
  inv = scale * jax.lax.rsqrt(variance + eps)
  return inv * (x - mean) + offset


def first_layer_part(p: dict, x: jax.Array, start: int,
                     stop: int) -> jax.Array:
  """x @ w[start:stop] of the first layer, accumulated in float32.

  The first layer of an MLP on concat[a, b, c] equals the sum of each part
  times its rows of w; computing the parts separately lets node parts be
  computed once per node instead of once per edge.
  """
  w = p["linear_0"]["w"][start:stop].astype(x.dtype)
  return jnp.dot(x, w, preferred_element_type=jnp.float32)


def finish_first_layer(p: dict, parts_sum: jax.Array,
                       dtype) -> jax.Array:
  """Adds the first layer's bias to the float32 sum of parts; casts to dtype."""
  b = p["linear_0"]["b"].astype(dtype).astype(jnp.float32)
  return (parts_sum + b).astype(dtype)


def mlp_block(params: dict, name: str, x: jax.Array) -> jax.Array:
  """MLP then LayerNorm if the block has one."""
  y = mlp(params[f"{name}_mlp"], x)
  ln = params.get(f"{name}_layer_norm")
  return y if ln is None else layer_norm(ln, y)
