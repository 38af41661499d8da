"""Typed interaction-network steps on bipartite and mesh graphs, as pure JAX.

One step of the published `InteractionNetwork` on an edge set:
  e' = LN(MLP(concat[e, nodes_s[senders], nodes_r[receivers]]))
  n_r' = LN(MLP(concat[n_r, sum_{edges into r} e']))
with residuals e + e', n_r + n_r' added by the caller.

Speed: the first layer of the edge MLP is split by rows of its weight, so that
`nodes @ W_s` and `nodes @ W_r` are computed once per node and gathered, instead
of multiplying a gathered [edges, latent] copy. Memory: edge sets whose updated
latents are only summed into nodes (grid->mesh, mesh->grid) can be processed in
blocks of edges inside `lax.scan`, each block recomputed in the backward pass.
"""

from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from graphcast_fdl.model import halo as halo_lib
from graphcast_fdl.model import layers


@flax.struct.dataclass
class EdgeArrays:
  """One edge set, edges sorted by receiver (for sorted segment sums).

  senders: int32 [E]; receivers: int32 [E] ascending; features: float32 [E, F].
  halo: None on one device. Split over devices (`graph.partition`): the rows
    to exchange, senders then index `sender_table`'s extended rows.
  """

  senders: jax.Array
  receivers: jax.Array
  features: jax.Array
  halo: halo_lib.Halo | None = None


@flax.struct.dataclass
class GraphArrays:
  """Everything the network needs from the graphs, as arrays.

  grid_nodes: float32 [n_grid, 3] structural features (sin lat, cos lon, sin lon).
  mesh_nodes: float32 [n_mesh, 3].
  """

  grid_nodes: jax.Array
  mesh_nodes: jax.Array
  grid2mesh: EdgeArrays
  mesh: EdgeArrays
  mesh2grid: EdgeArrays


def _edge_arrays(edge_set) -> EdgeArrays:
  senders = np.asarray(edge_set.senders, np.int32)
  receivers = np.asarray(edge_set.receivers, np.int32)
  features = np.asarray(edge_set.features, np.float32)
  order = np.argsort(receivers, kind="stable")
  return EdgeArrays(senders=senders[order], receivers=receivers[order], features=features[order])


def graph_arrays(graphs) -> GraphArrays:
  """GraphArrays (numpy) from a `graph.GraphCastGraphs`."""
  return GraphArrays(
      grid_nodes=np.asarray(graphs.grid_node_features, np.float32),
      mesh_nodes=np.asarray(graphs.mesh_node_features, np.float32),
      grid2mesh=_edge_arrays(graphs.grid2mesh),
      mesh=_edge_arrays(graphs.mesh),
      mesh2grid=_edge_arrays(graphs.mesh2grid),
  )


def sender_table(edges: EdgeArrays, nodes: jax.Array) -> jax.Array:
  """The rows `edges.senders` index: the nodes, plus halo rows if split."""
  if edges.halo is None:
    return nodes
  return halo_lib.extend(nodes, edges.halo)


def segment_sum(data: jax.Array, segment_ids: jax.Array, num_segments: int, f32: bool) -> jax.Array:
  """Sum of edges into their receivers; optionally accumulated in float32."""
  dtype = data.dtype
  if f32:
    data = data.astype(jnp.float32)
  out = jax.ops.segment_sum(data, segment_ids, num_segments, indices_are_sorted=True)
  return out.astype(dtype)


def edge_update_fn(
    params: dict,
    name: str,
    edge_dim: int,
    sender_nodes: jax.Array,
    receiver_nodes: jax.Array,
    sender_per_edge: bool = False,
    receiver_per_edge: bool = False,
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
  """Returns f(edge_latents [E(,B),L], senders, receivers) -> e' [E, B, L].

  The node parts of the first layer are computed here, once per node, and
  the returned function only gathers them; a side `*_per_edge` instead has
  its part computed per edge from the gathered node latents (the same
  values, row by row). That costs one more [L, L] product per edge but holds
  neither the float32 per-node part nor, in the backward pass, its float32
  gradient: the gathered latents' gradient is summed into the nodes in the
  compute dtype, as the published model's gather does.
  """
  p = params[f"{name}_mlp"]
  ln = params[f"{name}_layer_norm"]
  sender_dim = sender_nodes.shape[-1]
  dtype = sender_nodes.dtype
  sender_rows = (edge_dim, edge_dim + sender_dim)
  receiver_rows = (edge_dim + sender_dim, None)

  def node_part(nodes, rows, per_edge):
    if per_edge:
      return lambda index: layers.first_layer_part(p, nodes[index], *rows)
    part = layers.first_layer_part(p, nodes, *rows)
    return lambda index: part[index]

  sender_part = node_part(sender_nodes, sender_rows, sender_per_edge)
  receiver_part = node_part(receiver_nodes, receiver_rows, receiver_per_edge)

  def update(edges, senders, receivers):
    h = layers.first_layer_part(p, edges, 0, edge_dim)
    if h.ndim == 2:  # Batch-independent edge latents: broadcast over batch.
      h = h[:, None, :]
    h = h + sender_part(senders) + receiver_part(receivers)
    h = layers.finish_first_layer(p, h, dtype)
    return layers.layer_norm(ln, layers.mlp_tail(p, h))

  return update


def node_update(
    params: dict, name: str, nodes: jax.Array, aggregated: jax.Array | None
) -> jax.Array:
  """n' = LN(MLP(concat[nodes, aggregated])) (aggregated may be absent)."""
  p = params[f"{name}_mlp"]
  if aggregated is None:
    h = layers.linear(p["linear_0"], nodes)
  else:
    dim = nodes.shape[-1]
    h = layers.first_layer_part(p, nodes, 0, dim) + layers.first_layer_part(
        p, aggregated, dim, None
    )
    h = layers.finish_first_layer(p, h, nodes.dtype)
  return layers.layer_norm(params[f"{name}_layer_norm"], layers.mlp_tail(p, h))


def aggregate_messages(
    message_fn: Callable,
    edges: EdgeArrays,
    num_receivers: int,
    out_shape: tuple,
    dtype,
    f32: bool,
    block_size: int | None,
) -> jax.Array:
  """Sum over edges of message_fn(features, senders, receivers) per receiver.

  Args:
    message_fn: (features [e, F], senders [e], receivers [e]) -> [e, B, L].
    edges: the edge set (sorted by receiver).
    num_receivers: number of receiver nodes.
    out_shape: (B, L) of one message.
    dtype: dtype of messages and of the result.
    f32: accumulate in float32.
    block_size: None: all edges at once. Else process edges in blocks of this
      many inside a scan, recomputing each block in the backward pass, so that
      only [block, B, L] temporaries live at once.

  Returns:
    [num_receivers, B, L] in dtype.
  """
  num_edges = edges.senders.shape[0]
  if block_size is None or block_size >= num_edges:
    messages = message_fn(edges.features, edges.senders, edges.receivers)
    return segment_sum(messages, edges.receivers, num_receivers, f32)

  num_blocks = -(-num_edges // block_size)
  pad = num_blocks * block_size - num_edges

  def blocks(x, fill):
    x = jnp.concatenate([x, jnp.full((pad,) + x.shape[1:], fill, x.dtype)], axis=0)
    return x.reshape((num_blocks, block_size) + x.shape[1:])

  # Padded edges send from node 0 into a dummy receiver that is dropped.
  xs = (blocks(edges.features, 0), blocks(edges.senders, 0), blocks(edges.receivers, num_receivers))
  acc_dtype = jnp.float32 if f32 else dtype
  message_fn = jax.checkpoint(message_fn)

  def body(acc, block):
    features, senders, receivers = block
    messages = message_fn(features, senders, receivers).astype(acc_dtype)
    acc = acc.at[receivers].add(messages, indices_are_sorted=True)
    return acc, None

  # The first block outside the loop: the sum is made like its messages, so
  # that inside `shard_map` it varies over the same mesh axes.
  first = message_fn(*(x[0] for x in xs)).astype(acc_dtype)
  acc = jnp.zeros_like(first, shape=(num_receivers + 1,) + tuple(out_shape))
  acc = acc.at[xs[2][0]].add(first, indices_are_sorted=True)
  acc, _ = jax.lax.scan(body, acc, tuple(x[1:] for x in xs))
  return acc[:num_receivers].astype(dtype)
