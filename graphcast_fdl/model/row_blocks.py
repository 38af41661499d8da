"""Row-wise computations in checkpointed blocks, to bound saved activations.

The grid-node MLPs of GraphCast (input embedding, the encoder's and decoder's
grid-node updates, the output MLP) act on each of the ~1M grid nodes of a
0.25 deg grid independently. Their hidden activations, kept for the backward
pass, are the largest single item of a step's memory (about 6 GiB per MLP in
bfloat16 at 0.25 deg). Running such a map over blocks of rows inside a
`lax.scan`, with each block checkpointed, keeps only the inputs (which exist
anyway) and one block's activations at a time, for one more forward pass of
those MLPs. The loop also pins each block's recomputation to its place in the
backward pass, which XLA:CPU otherwise hoists.

Blocks do not need padding: the last block starts at `num_rows - block_size`
and recomputes a few rows of its neighbour, whose values it overwrites with
the same numbers (and the overwritten copies get no cotangent).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def rows(x: jax.Array, start, size: int, axis: int = 0) -> jax.Array:
  """x[start:start+size] along `axis` (no slicing when it is all of x)."""
  if size == x.shape[axis]:
    return x
  return jax.lax.dynamic_slice_in_dim(x, start, size, axis=axis)


def as_varying(x: jax.Array) -> jax.Array:
  """`x` marked as varying over the mesh's manual axes, for a scan carry.

  Inside `shard_map` (data parallelism, `train.sharding`) a loop's results
  vary over the manual axes, and `lax.scan` needs its initial carry to say so
  too (zeros, or edge latents of the static graph, do not); outside
  `shard_map`, or when `x` already varies, this is `x`.
  """
  varying = jax.typeof(x).manual_axis_type.varying
  axes = tuple(a for a in jax.sharding.get_abstract_mesh().manual_axes if a not in varying)
  return jax.lax.pcast(x, axes, to="varying") if axes else x


def map_row_blocks(
    fn: Callable[..., jax.Array], num_rows: int, block_size: int | None, out_axis: int = 0
) -> jax.Array:
  """All rows of fn, computed `block_size` rows at a time.

  Args:
    fn: (start, size) -> array holding rows [start, start+size) of the result
      along `out_axis`; it reads its inputs with `rows(x, start, size)`.
      `start` may be a tracer.
    num_rows: rows of the result.
    block_size: rows per block; None (or >= num_rows): one call, no blocks.
    out_axis: the row axis of fn's result.

  Returns:
    fn's result for all `num_rows` rows.
  """
  if block_size is None or block_size >= num_rows:
    return fn(0, num_rows)
  if block_size < 1:
    raise ValueError(f"block_size={block_size}: must be >= 1")
  num_blocks = -(-num_rows // block_size)
  starts = jnp.minimum(jnp.arange(num_blocks) * block_size, num_rows - block_size)
  block = jax.checkpoint(lambda start: fn(start, block_size))

  def body(result, start):
    return jax.lax.dynamic_update_slice_in_dim(result, block(start), start, axis=out_axis), None

  # The first block outside the loop: the result is made like it, so that
  # inside `shard_map` it varies over the same mesh axes as the blocks.
  first = block(starts[0])
  out_shape = list(first.shape)
  out_shape[out_axis] = num_rows
  result = jax.lax.dynamic_update_slice_in_dim(
      jnp.zeros_like(first, shape=out_shape), first, starts[0], axis=out_axis
  )
  result, _ = jax.lax.scan(body, result, starts[1:])
  return result
