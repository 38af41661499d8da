"""Closed-form graph, channel and parameter counts of a GraphCast config.

The estimator must answer for 0.25 deg without building its 1.6M + 3.1M-edge
graph, so every size here comes from a formula:
  * mesh nodes of refinement M: 10 * 4**M + 2;
  * multi-mesh edges: every level r <= M adds 30 * 4**r undirected edges,
    so 60 * (4**(M+1) - 1) / 3 directed edges (levels share nodes, not edges);
  * grid nodes: (180/res + 1) x 360/res with poles, (180/res) x 360/res without;
  * grid2mesh edges: a grid point connects to every mesh node within chord
    distance r = fraction * longest finest-mesh edge. A spherical cap of chord
    radius r has area pi r^2, and mesh nodes are nearly uniform, so the mean
    count per grid point is mesh_nodes * r^2 / 4 (within 2% of the real graph:
    1,635,800 vs 1,618,745 at 0.25 deg/M6; 6,485 vs 6,576 at 4 deg/M3);
  * mesh2grid edges: 3 per grid point (the vertices of its enclosing triangle).
Parameter counts are exact (checked against the published 36,348,131).
"""

from __future__ import annotations

import dataclasses

from graphcast_fdl import grid as grid_lib
from graphcast_fdl import task as task_lib
from graphcast_fdl.graph.features import EDGE_FEATURES
from graphcast_fdl.graph.features import NODE_FEATURES
from graphcast_fdl.model.config import ModelConfig

# Longest edge (unit-sphere chord) of the icosahedron refined M times by
# splitting each triangle in 4 and projecting midpoints onto the sphere.
# Computed once by that refinement; tests recompute the small levels.
MAX_EDGE_LENGTH = {
    0: 1.0514622242382672,
    1: 0.6180339887498949,
    2: 0.3249196962329064,
    3: 0.1646471600639204,
    4: 0.08260396653395065,
    5: 0.04133725597395912,
    6: 0.02067304414009293,
    7: 0.01033707431037156,
}


@dataclasses.dataclass(frozen=True)
class GraphSizes:
  """Node and edge counts of one grid/multi-mesh pair (directed edges)."""

  grid_lat: int
  grid_lon: int
  mesh_nodes: int
  mesh_edges: int
  grid2mesh_edges: int
  mesh2grid_edges: int

  @property
  def grid_nodes(self) -> int:
    return self.grid_lat * self.grid_lon

  def sender_rows(self, edge_set: str) -> int:
    """Rows the senders of `edge_set` ("grid2mesh", "mesh", "mesh2grid")
    index: its sending nodes (split over devices, also the halo received;
    `spatial_cost.PartSizes`)."""
    return self.grid_nodes if edge_set == "grid2mesh" else self.mesh_nodes


@dataclasses.dataclass(frozen=True)
class Channels:
  """Per-node feature widths seen by the grid embedder and the decoder.

  Attributes:
    input_frame: channels of one input frame (levels expanded, no statics).
    grid_input: width of the grid (and mesh) node embedder input:
      frames * input_frame + statics + target-time forcings + 3 structural.
    output: channels predicted per grid point (levels expanded).
    forcing: channels of one target-time forcing frame.
    input_frames: frames in the input window ("12h" at 6h steps: 2).
  """

  input_frame: int
  grid_input: int
  output: int
  forcing: int
  input_frames: int


def graph_sizes(model: ModelConfig) -> GraphSizes:
  """Closed-form graph sizes (no graph is built)."""
  lat, lon = grid_lib.grid_shape(model.resolution, model.include_poles)
  m = model.mesh_size
  mesh_nodes = 10 * 4**m + 2
  mesh_edges = 60 * (4 ** (m + 1) - 1) // 3
  radius = model.radius_query_fraction_edge_length * MAX_EDGE_LENGTH[m]
  grid2mesh = round(lat * lon * mesh_nodes * radius**2 / 4)
  return GraphSizes(
      grid_lat=lat,
      grid_lon=lon,
      mesh_nodes=mesh_nodes,
      mesh_edges=mesh_edges,
      grid2mesh_edges=grid2mesh,
      mesh2grid_edges=3 * lat * lon,
  )


def channels(task: task_lib.TaskConfig) -> Channels:
  """Channel counts from the task's variables and levels."""
  levels = task.num_levels

  def width(names):
    return sum(levels if task_lib.has_levels(n) else 1 for n in names)

  dynamic = [v for v in task.input_variables if v not in task_lib.STATIC]
  statics = [v for v in task.input_variables if v in task_lib.STATIC]
  frames = task_lib.input_frames(task)
  input_frame = width(dynamic)
  forcing = width(task.forcing_variables)
  return Channels(
      input_frame=input_frame,
      grid_input=(frames * input_frame + width(statics) + forcing + NODE_FEATURES),
      output=width(task.target_variables),
      forcing=forcing,
      input_frames=frames,
  )


def _mlp_params(
    d_in: int, latent: int, hidden_layers: int, d_out: int, layer_norm: bool = True
) -> int:
  widths = [d_in] + [latent] * hidden_layers + [d_out]
  count = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
  return count + (2 * d_out if layer_norm else 0)


def num_params(model: ModelConfig, task: task_lib.TaskConfig) -> int:
  """Exact trainable parameter count (all float32)."""
  c = channels(task)
  L, h = model.latent_size, model.hidden_layers

  def mlp(d_in, d_out=L, layer_norm=True):
    return _mlp_params(d_in, L, h, d_out, layer_norm)

  embed = 3 * mlp(EDGE_FEATURES) + 2 * mlp(c.grid_input)  # 3 edge sets, 2 node sets
  grid2mesh = mlp(3 * L) + mlp(2 * L) + mlp(L)  # edges, mesh nodes, grid nodes
  processor = model.gnn_msg_steps * (mlp(3 * L) + mlp(2 * L))
  mesh2grid = mlp(3 * L) + mlp(2 * L) + mlp(L)  # edges, grid nodes, mesh nodes
  decoder = mlp(L, c.output, layer_norm=False)
  return embed + grid2mesh + processor + mesh2grid + decoder
