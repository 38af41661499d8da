"""The GraphCast encoder-processor-decoder network on flat grid-node features.

Maps normalised channel-major inputs [batch, channels, n_grid] to normalised
outputs [batch, outputs, n_grid] through three graph networks with the
published structure and parameter names (latents are [nodes, batch, latent]):
  grid2mesh_gnn: embeds grid/mesh nodes and grid->mesh edges, one interaction
    step (mesh nodes aggregate edges in float32; grid nodes get a residual MLP).
  mesh_gnn: embeds multi-mesh edges, `gnn_msg_steps` unshared interaction steps.
  mesh2grid_gnn: embeds mesh->grid edges, one interaction step into the grid
    nodes, then an output MLP (no LayerNorm).
Updates whose outputs the published model discards (the decoder's mesh-node
update, the last edge residuals) are not computed; their parameters still exist
so that checkpoints round-trip (their gradients are zero, as published).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from graphcast_fdl.graph.features import EDGE_FEATURES
from graphcast_fdl.graph.features import NODE_FEATURES
from graphcast_fdl.model import gnn
from graphcast_fdl.model import layers
from graphcast_fdl.model import row_blocks
from graphcast_fdl.model.config import ModelConfig


def gnn_blocks(model: ModelConfig, num_input_channels: int, num_outputs: int) -> dict[str, tuple]:
  """Per graph network: (name, in_features, out_size, layer_norm) blocks."""
  latent = model.latent_size
  node_in = num_input_channels + NODE_FEATURES
  grid2mesh = (
      ("encoder_edges_grid2mesh", EDGE_FEATURES, latent, True),
      ("encoder_nodes_grid_nodes", node_in, latent, True),
      ("encoder_nodes_mesh_nodes", node_in, latent, True),
      ("processor_edges_0_grid2mesh", 3 * latent, latent, True),
      ("processor_nodes_0_grid_nodes", latent, latent, True),
      ("processor_nodes_0_mesh_nodes", 2 * latent, latent, True),
  )
  mesh = (("encoder_edges_mesh", EDGE_FEATURES, latent, True),)
  for i in range(model.gnn_msg_steps):
    mesh += (
        (f"processor_edges_{i}_mesh", 3 * latent, latent, True),
        (f"processor_nodes_{i}_mesh_nodes", 2 * latent, latent, True),
    )
  mesh2grid = (
      ("encoder_edges_mesh2grid", EDGE_FEATURES, latent, True),
      ("processor_edges_0_mesh2grid", 3 * latent, latent, True),
      ("processor_nodes_0_grid_nodes", 2 * latent, latent, True),
      ("processor_nodes_0_mesh_nodes", latent, latent, True),
      ("decoder_nodes_grid_nodes", latent, num_outputs, False),
  )
  return {"grid2mesh_gnn": grid2mesh, "mesh_gnn": mesh, "mesh2grid_gnn": mesh2grid}


def _embed_edges(params, name, features, dtype):
  return layers.mlp_block(params, name, features.astype(dtype))


def _messages_into(
    params: dict,
    name: str,
    edge_set,
    senders: jax.Array,
    receivers: jax.Array,
    dtype,
    f32: bool,
    block_size: int | None,
    grid_side: str | None = None,
) -> jax.Array:
  """Embedded and updated `name` edges summed into their receivers.

  The bipartite step shared by grid2mesh and mesh2grid; edge latents are only
  ever needed summed, so they can be made block by block to bound memory.
  `grid_side` ("senders" or "receivers") has the grid nodes' first-layer part
  computed per edge (`ModelConfig.grid_parts_per_edge`).
  Returns [n_receivers, B, L].
  """
  update = gnn.edge_update_fn(
      params,
      f"processor_edges_0_{name}",
      receivers.shape[-1],
      gnn.sender_table(edge_set, senders),
      receivers,
      sender_per_edge=grid_side == "senders",
      receiver_per_edge=grid_side == "receivers",
  )

  def messages(features, edge_senders, edge_receivers):
    edges = _embed_edges(params, f"encoder_edges_{name}", features, dtype)
    return update(edges, edge_senders, edge_receivers)

  return gnn.aggregate_messages(
      messages,
      edge_set,
      receivers.shape[0],
      receivers.shape[1:],
      dtype,
      f32=f32,
      block_size=block_size,
  )


def _embed_grid(
    params: dict, graph: gnn.GraphArrays, grid_inputs: Sequence[jax.Array], start, size: int
) -> jax.Array:
  """Grid-node embedding of rows [start, start+size): [size, B, L].

  MLP(concat[inputs, structural]) by first-layer parts, contracting each
  channel-major part [B, C_i, n_grid] where it lies.
  """
  dtype = grid_inputs[0].dtype
  p = params["encoder_nodes_grid_nodes_mlp"]
  w = p["linear_0"]["w"]
  h = 0.0
  first = 0
  for part in grid_inputs:
    last = first + part.shape[1]
    h = h + layers.channel_major_dot(row_blocks.rows(part, start, size, axis=2), w[first:last])
    first = last
  structural = row_blocks.rows(graph.grid_nodes, start, size).astype(dtype)
  h = h + layers.first_layer_part(p, structural, first, None)[:, None]
  h = layers.finish_first_layer(p, h, dtype)
  return layers.layer_norm(params["encoder_nodes_grid_nodes_layer_norm"], layers.mlp_tail(p, h))


def encode(
    params: dict,
    graph: gnn.GraphArrays,
    grid_inputs: Sequence[jax.Array],
    block_size: int | None,
    grid_block_size: int | None = None,
    grid_parts_per_edge: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """grid2mesh_gnn: channel-major input parts [B, C_i, n_grid] (concatenated
  along channels they are the published node inputs) -> mesh latents
  [n_mesh, B, L] and grid latents [n_grid, B, L].

  `block_size` blocks the grid->mesh edges, `grid_block_size` the grid-node
  MLPs (`row_blocks`); neither changes the result.
  """
  dtype = grid_inputs[0].dtype
  batch = grid_inputs[0].shape[0]
  num_grid = graph.grid_nodes.shape[0]
  num_channels = sum(part.shape[1] for part in grid_inputs)
  grid = row_blocks.map_row_blocks(
      lambda start, size: _embed_grid(params, graph, grid_inputs, start, size),
      num_grid,
      grid_block_size,
  )

  # Embed mesh nodes: the published model feeds zeros in place of inputs, so
  # only the structural rows of the first layer contribute. Batch-independent.
  p = params["encoder_nodes_mesh_nodes_mlp"]
  h = layers.first_layer_part(p, graph.mesh_nodes.astype(dtype), num_channels, None)
  h = layers.finish_first_layer(p, h, dtype)
  mesh = layers.layer_norm(params["encoder_nodes_mesh_nodes_layer_norm"], layers.mlp_tail(p, h))
  mesh = jnp.broadcast_to(mesh[:, None], (mesh.shape[0], batch, mesh.shape[-1]))

  # One interaction step; edge latents are only needed summed into mesh nodes.
  aggregated = _messages_into(
      params,
      "grid2mesh",
      graph.grid2mesh,
      grid,
      mesh,
      dtype,
      f32=True,
      block_size=block_size,
      grid_side="senders" if grid_parts_per_edge else None,
  )
  mesh = mesh + gnn.node_update(params, "processor_nodes_0_mesh_nodes", mesh, aggregated)

  def update_grid(start, size):
    rows = row_blocks.rows(grid, start, size)
    return rows + gnn.node_update(params, "processor_nodes_0_grid_nodes", rows, None)

  return mesh, row_blocks.map_row_blocks(update_grid, num_grid, grid_block_size)


def process(
    params: dict, graph: gnn.GraphArrays, mesh: jax.Array, num_steps: int, remat_every_k: int
) -> jax.Array:
  """mesh_gnn: `num_steps` unshared interaction steps on the multi-mesh.

  With remat_every_k = k > 0, groups of k steps run in a `lax.scan` over
  their stacked parameters with the body checkpointed: only each group's
  input latents are kept for the backward pass, and the loop pins each
  recomputation to its place in the backward pass (XLA:CPU otherwise hoists
  unrolled recomputations forward, which undoes the saving).
  """
  edges = graph.mesh
  num_nodes = mesh.shape[0]
  latents = _embed_edges(params, "encoder_edges_mesh", edges.features, mesh.dtype)

  def step_params(i):
    return {
        "e_mlp": params[f"processor_edges_{i}_mesh_mlp"],
        "e_layer_norm": params[f"processor_edges_{i}_mesh_layer_norm"],
        "n_mlp": params[f"processor_nodes_{i}_mesh_nodes_mlp"],
        "n_layer_norm": params[f"processor_nodes_{i}_mesh_nodes_layer_norm"],
    }

  def step(p, latents, mesh):
    update = gnn.edge_update_fn(p, "e", latents.shape[-1], gnn.sender_table(edges, mesh), mesh)
    new_edges = update(latents, edges.senders, edges.receivers)
    aggregated = gnn.segment_sum(new_edges, edges.receivers, num_nodes, f32=False)
    mesh = mesh + gnn.node_update(p, "n", mesh, aggregated)
    if latents.ndim == 2:
      latents = latents[:, None]
    return latents + new_edges, mesh

  if remat_every_k <= 0:
    for i in range(num_steps):
      latents, mesh = step(step_params(i), latents, mesh)
    return mesh

  k = remat_every_k
  num_groups = num_steps // k
  # The scan carry needs a fixed shape: latents with their batch axis.
  latents = jnp.broadcast_to(
      latents[:, None] if latents.ndim == 2 else latents,
      (latents.shape[0], mesh.shape[1], latents.shape[-1]),
  )

  @jax.checkpoint
  def group(carry, group_params):
    latents, mesh = carry
    for p in group_params:
      latents, mesh = step(p, latents, mesh)
    return (latents, mesh), None

  if num_groups:
    stacked = [
        jax.tree.map(
            lambda *xs: jnp.stack(xs), *[step_params(g * k + j) for g in range(num_groups)]
        )
        for j in range(k)
    ]
    (latents, mesh), _ = jax.lax.scan(
        group, jax.tree.map(row_blocks.as_varying, (latents, mesh)), stacked
    )
  rest = [step_params(i) for i in range(num_groups * k, num_steps)]
  if rest:
    (latents, mesh), _ = group((latents, mesh), rest)
  return mesh


def decode(
    params: dict,
    graph: gnn.GraphArrays,
    mesh: jax.Array,
    grid: jax.Array,
    block_size: int | None,
    grid_block_size: int | None = None,
    grid_parts_per_edge: bool = False,
) -> jax.Array:
  """mesh2grid_gnn: mesh and grid latents -> [B, outputs, n_grid].

  The grid-node update and the output MLP act per grid node, so with
  `grid_block_size` they run together block by block (`row_blocks`).
  """
  aggregated = _messages_into(
      params,
      "mesh2grid",
      graph.mesh2grid,
      mesh,
      grid,
      grid.dtype,
      f32=False,
      block_size=block_size,
      grid_side="receivers" if grid_parts_per_edge else None,
  )
  p = params["decoder_nodes_grid_nodes_mlp"]

  def outputs(start, size):
    nodes = row_blocks.rows(grid, start, size)
    h = nodes + gnn.node_update(
        params, "processor_nodes_0_grid_nodes", nodes, row_blocks.rows(aggregated, start, size)
    )
    # Output MLP; its last layer writes channel-major [B, outputs, size].
    for i in range(len(p) - 1):
      h = layers.swish(layers.linear(p[f"linear_{i}"], h))
    return layers.linear_to_channel_major(p[f"linear_{len(p) - 1}"], h)

  return row_blocks.map_row_blocks(outputs, grid.shape[0], grid_block_size, out_axis=2)


class GraphCastNet(nn.Module):
  """Normalised grid inputs -> normalised grid outputs.

  Attributes:
    model: architecture, precision and memory knobs.
    num_input_channels: channels of the stacked inputs and forcings.
    num_outputs: channels of the stacked targets.
  """

  model: ModelConfig
  num_input_channels: int
  num_outputs: int

  def setup(self):
    blocks = gnn_blocks(self.model, self.num_input_channels, self.num_outputs)
    make = lambda name: layers.BlockParams(
        blocks[name], self.model.latent_size, self.model.hidden_layers
    )
    self.grid2mesh_gnn = make("grid2mesh_gnn")
    self.mesh_gnn = make("mesh_gnn")
    self.mesh2grid_gnn = make("mesh2grid_gnn")

  def param_dicts(self) -> dict:
    """Declares (at init) and returns all parameters, without any compute."""
    return {
        "grid2mesh_gnn": self.grid2mesh_gnn(),
        "mesh_gnn": self.mesh_gnn(),
        "mesh2grid_gnn": self.mesh2grid_gnn(),
    }

  def __call__(self, graph: gnn.GraphArrays, grid_inputs: Sequence[jax.Array]) -> jax.Array:
    """Channel-major inputs [B, C_i, n_grid] (compute dtype; their channels
    concatenated are the published node inputs) -> [B, outputs, n_grid]."""
    model = self.model
    params = self.param_dicts()
    block = model.edge_block_size
    grid_block = model.remat.grid_block_size
    per_edge = model.grid_parts_per_edge
    encoder = lambda p, x: encode(p, graph, x, block, grid_block, per_edge)
    decoder = lambda p, m, g: decode(p, graph, m, g, block, grid_block, per_edge)
    if model.remat.encoder_decoder:
      encoder = jax.checkpoint(encoder)
      decoder = jax.checkpoint(decoder)

    mesh, grid = encoder(params["grid2mesh_gnn"], grid_inputs)
    mesh = process(
        params["mesh_gnn"], graph, mesh, model.gnn_msg_steps, model.remat.processor_every_k
    )
    return decoder(params["mesh2grid_gnn"], mesh, grid)
