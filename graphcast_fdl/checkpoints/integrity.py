"""Integrity of saved arrays: shapes and checksums written with every checkpoint.

A run lasts weeks; a flipped byte or a truncated file must not be restored
silently. Each save records, per array, its shape and a checksum computed on
the devices; a restore recomputes them and compares. Both the trainer (full
state) and `orbax_params` (parameters alone) verify through this module.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np


class CheckpointDamaged(ValueError):
  """A checkpoint that does not read back as it was written."""


class CheckpointMismatch(ValueError):
  """A readable checkpoint of another model: the config changed, not the files."""


def _leaf_checksum(x) -> jax.Array:
  """A position-weighted sum of the array's bits, mod 2**32.

  Integer arithmetic wraps the same way whatever the summation order, so the
  value does not depend on the device count or sharding; any change of a
  single word changes it (the weights are odd).
  """
  x = jnp.asarray(x)
  width = x.dtype.itemsize
  if width == 8:
    words = jax.lax.bitcast_convert_type(x, jnp.uint32)
  else:
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[width]
    if x.dtype == jnp.bool_:
      x = x.astype(jnp.uint8)
    words = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
  words = words.reshape(-1)
  weights = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(1)
  weights = weights | jnp.uint32(1)
  return jnp.sum(words * weights, dtype=jnp.uint32)


_checksums_jit = jax.jit(lambda tree: jax.tree.map(_leaf_checksum, tree))


def _paths(tree) -> list[str]:
  return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def checksums(items: dict) -> dict[str, dict[str, int]]:
  """{item: {array path: checksum}} of a (possibly sharded) tree of items."""
  out = {}
  for name, tree in items.items():
    values = jax.tree.leaves(_checksums_jit(tree))
    values = [int(np.asarray(v.addressable_shards[0].data)) for v in values]
    out[name] = dict(zip(_paths(tree), values))
  return out


def shapes(items: dict) -> dict[str, dict[str, list[int]]]:
  return {
      name: {path: list(np.shape(leaf)) for path, leaf in zip(_paths(tree), jax.tree.leaves(tree))}
      for name, tree in items.items()
  }


def first_line(error: BaseException, limit: int = 240) -> str:
  """`Type: first line`, shortened; an OS error code (tensorstore writes
  `[os_error_code='28']`) is spelled out instead of the long original."""
  text = str(error).strip().splitlines()
  text = text[0] if text else ""
  code = re.search(r"os_error_code='(\d+)'", text)
  if code:
    return os.strerror(int(code.group(1))).lower()
  if len(text) > limit:
    text = text[:limit] + "..."
  return f"{type(error).__name__}: {text}".rstrip(": ")


def check_shapes(meta: dict, target: dict, step: int) -> None:
  """CheckpointMismatch if the saved shapes are not the target's."""
  saved = meta.get("shapes")
  if saved is None:  # Written before shapes were recorded.
    return
  wanted = shapes(target)
  for name in target:
    for path, shape in wanted[name].items():
      have = saved.get(name, {}).get(path)
      if have is not None and list(have) != shape:
        raise CheckpointMismatch(
            f"checkpoint step {step} holds {name}{path} of shape "
            f"{tuple(have)}, the config gives {tuple(shape)}: it was written "
            "by another model config"
        )


def check_sums(meta: dict, restored: dict, step: int) -> None:
  saved = meta.get("checksums")
  if saved is None:
    return
  got = checksums(restored)
  for name in restored:
    for path, value in got[name].items():
      if saved.get(name, {}).get(path) != value:
        raise CheckpointDamaged(f"checksum of {name}{path} differs from the one saved")
