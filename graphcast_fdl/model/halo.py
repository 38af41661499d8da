"""Halo exchange: the sender rows an edge set needs from other devices.

With the graphs split over a `space` mesh axis (`graph.partition`), the edges
into a device's receivers may send from rows held elsewhere. Each device
gathers the rows every other device needs from it into one buffer of K equal
blocks and a single `all_to_all` swaps the blocks, so a device receives only
the rows its edges read (its halo), not the whole node set. The transpose of
`all_to_all` is an `all_to_all`, so gradients flow back to the rows' owners
exactly.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Halo:
  """What one device sends for one edge set.

  send_rows: int32 [K * halo_size]: block p lists the local rows device p
    needs (padded with row 0).
  axis_name: the mesh axis the graph is split over.
  """

  send_rows: jax.Array
  axis_name: str = flax.struct.field(pytree_node=False)


def extend(nodes: jax.Array, halo: Halo) -> jax.Array:
  """[n_local, ...] -> [n_local + K * halo_size, ...]: own rows, then the rows
  received from each device in device order (block q from device q)."""
  sent = nodes[halo.send_rows]
  received = jax.lax.all_to_all(sent, halo.axis_name, 0, 0, tiled=True)
  return jnp.concatenate([nodes, received], axis=0)
