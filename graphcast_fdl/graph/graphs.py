"""The three GraphCast graphs (grid->mesh, multi-mesh, mesh->grid) with features.

Node orderings are the published ones, so a port of a published checkpoint
reproduces its outputs:
- grid nodes: a `[lat, lon]` field flattened row-major,
  `node = lat_index * num_lon + lon_index`, lat ascending (-90 first with
  poles), lon ascending from 0. `field.reshape(num_lat * num_lon, ...)` on a
  `[lat, lon, ...]` array gives node order.
- mesh nodes: vertices of the finest icosahedral mesh in published order
  (the 12 icosahedron corners first, then each refinement's new vertices).
Edge orders are the published ones too (see `build_graphs`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from graphcast_fdl import grid as grid_lib
from graphcast_fdl.graph import cache
from graphcast_fdl.graph import features
from graphcast_fdl.graph import grid_mesh_connectivity
from graphcast_fdl.graph import icosahedral_mesh

DEFAULT = cache.DEFAULT


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeSet:
  """Directed edges between two node sets, with their structural features.

  Attributes:
    senders: [E] int32 indices into the sender node set.
    receivers: [E] int32 indices into the receiver node set.
    features: [E, 4] float32 [length, dx, dy, dz] (see `features`).
  """

  senders: np.ndarray
  receivers: np.ndarray
  features: np.ndarray

  @property
  def num_edges(self) -> int:
    return int(self.senders.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class GraphCastGraphs:
  """Everything static the GraphCast model needs about its grid and mesh.

  Attributes:
    grid_lat: [num_lat] float64 degrees, ascending.
    grid_lon: [num_lon] float64 degrees, ascending from 0.
    grid_node_features: [num_lat * num_lon, 3] float32 [sin(lat), cos(lon),
      sin(lon)], grid nodes in `lat_index * num_lon + lon_index` order.
    mesh_node_features: [num_mesh, 3] float32, same features for mesh nodes.
    mesh: multi-mesh edges (all refinement levels), mesh -> mesh.
    grid2mesh: senders index grid nodes, receivers mesh nodes; every grid
      point within `query_radius` of a mesh node, grid-major then by mesh node.
    mesh2grid: senders index mesh nodes, receivers grid nodes; each grid node
      receives from the 3 corners of its finest-mesh face, grid-major.
    mesh_lat, mesh_lon: [num_mesh] float32 degrees of the mesh nodes.
    mesh_size: finest refinement level.
    finest_mesh_max_edge_length: longest finest-mesh edge (unit sphere chord).
    query_radius: grid->mesh connection radius (unit sphere chord).
    edge_normalization: divisor used for each edge set's features.
  """

  grid_lat: np.ndarray
  grid_lon: np.ndarray
  grid_node_features: np.ndarray
  mesh_node_features: np.ndarray
  mesh: EdgeSet
  grid2mesh: EdgeSet
  mesh2grid: EdgeSet
  mesh_lat: np.ndarray | None = None
  mesh_lon: np.ndarray | None = None
  mesh_size: int = -1
  finest_mesh_max_edge_length: float = math.nan
  query_radius: float = math.nan
  edge_normalization: dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def num_grid_nodes(self) -> int:
    return int(self.grid_node_features.shape[0])

  @property
  def num_mesh_nodes(self) -> int:
    return int(self.mesh_node_features.shape[0])

  def sizes(self) -> dict:
    """Node/edge counts, named like the golden report.json "graph" block."""
    finest_faces = 20 * 4**self.mesh_size if self.mesh_size >= 0 else -1
    receiving = np.zeros(self.num_grid_nodes, bool)
    receiving[self.grid2mesh.senders] = True
    return {
        "grid_lat": int(self.grid_lat.shape[0]),
        "grid_lon": int(self.grid_lon.shape[0]),
        "grid_nodes": self.num_grid_nodes,
        "mesh_levels": self.mesh_size + 1,
        "mesh_nodes": self.num_mesh_nodes,
        "finest_mesh_faces": finest_faces,
        "multimesh_faces": self.mesh.num_edges // 3,
        "multimesh_edges": self.mesh.num_edges,
        "finest_mesh_max_edge_length": self.finest_mesh_max_edge_length,
        "grid2mesh_query_radius": self.query_radius,
        "grid2mesh_edges": self.grid2mesh.num_edges,
        "grid_nodes_without_grid2mesh_edge": int((~receiving).sum()),
        "mesh2grid_edges": self.mesh2grid.num_edges,
    }


class _GraphSpec(Protocol):
  """The fields of `graphcast_fdl.model.config.ModelConfig` used here."""

  resolution: float
  include_poles: bool
  mesh_size: int
  radius_query_fraction_edge_length: float
  mesh2grid_edge_normalization_factor: float | None


def graphs_for_model(
    model_config: _GraphSpec, cache_dir: str | None | object = DEFAULT
) -> GraphCastGraphs:
  """`build_graphs` for a `ModelConfig`."""
  return build_graphs(
      resolution=model_config.resolution,
      include_poles=model_config.include_poles,
      mesh_size=model_config.mesh_size,
      radius_query_fraction_edge_length=(model_config.radius_query_fraction_edge_length),
      mesh2grid_edge_normalization_factor=(model_config.mesh2grid_edge_normalization_factor),
      cache_dir=cache_dir,
  )


def build_graphs(
    resolution: float,
    include_poles: bool,
    mesh_size: int,
    radius_query_fraction_edge_length: float = 0.6,
    mesh2grid_edge_normalization_factor: float | None = None,
    cache_dir: str | None | object = DEFAULT,
) -> GraphCastGraphs:
  """Builds (or loads from the on-disk cache) the GraphCast graphs.

  Args:
    resolution: grid spacing in degrees; must divide 180.
    include_poles: grid rows at +-90 (ERA5) or cell centres offset by res/2.
    mesh_size: finest icosahedral refinement (6 published at 0.25 deg).
    radius_query_fraction_edge_length: grid->mesh radius as a fraction of the
      longest finest-mesh edge (0.6 published).
    mesh2grid_edge_normalization_factor: divisor of the mesh->grid edge
      features; None: the longest mesh->grid edge (published default).
    cache_dir: directory of cached graphs; `DEFAULT`: $GRAPHCAST_FDL_CACHE or
      ~/.cache/graphcast_fdl/graphs; None: no cache.

  Returns:
    The graphs. Building 0.25 deg / mesh 6 takes tens of seconds on 2 CPU
    cores; a cache hit takes about a second.

  Raises:
    ValueError: an argument is out of range (the message names it).
  """
  inputs = _check_inputs(
      resolution,
      include_poles,
      mesh_size,
      radius_query_fraction_edge_length,
      mesh2grid_edge_normalization_factor,
  )
  directory = cache.resolve_dir(cache_dir)
  if directory is not None:
    arrays = cache.load(directory, inputs)
    if arrays is not None:
      return _from_arrays(arrays)
  graphs = _build(**inputs)
  if directory is not None:
    cache.save(directory, inputs, _to_arrays(graphs))
  return graphs


def _check_inputs(resolution, include_poles, mesh_size, fraction, normalization) -> dict:
  if isinstance(resolution, bool) or not isinstance(
      resolution, (int, float, np.floating, np.integer)
  ):
    raise ValueError(f"resolution={resolution!r}: must be a number of degrees")
  grid_lib.grid_shape(float(resolution), True)  # validates
  if not isinstance(include_poles, (bool, np.bool_)):
    raise ValueError(f"include_poles={include_poles!r}: must be True or False")
  if isinstance(mesh_size, bool) or not isinstance(mesh_size, (int, np.integer)) or mesh_size < 0:
    raise ValueError(f"mesh_size={mesh_size!r}: must be a whole number >= 0")
  if not (isinstance(fraction, (int, float, np.floating)) and fraction > 0):
    raise ValueError(f"radius_query_fraction_edge_length={fraction!r}: must be > 0")
  if normalization is not None and not (
      isinstance(normalization, (int, float, np.floating)) and normalization > 0
  ):
    raise ValueError(
        f"mesh2grid_edge_normalization_factor={normalization!r}: " "must be None or > 0"
    )
  return dict(
      resolution=float(resolution),
      include_poles=bool(include_poles),
      mesh_size=int(mesh_size),
      radius_query_fraction_edge_length=float(fraction),
      mesh2grid_edge_normalization_factor=(None if normalization is None else float(normalization)),
  )


def _build(
    resolution,
    include_poles,
    mesh_size,
    radius_query_fraction_edge_length,
    mesh2grid_edge_normalization_factor,
) -> GraphCastGraphs:
  """Computes the graphs (no cache)."""
  meshes = icosahedral_mesh.mesh_hierarchy(mesh_size)
  finest = meshes[-1]
  max_edge = icosahedral_mesh.max_edge_length(finest)
  # float32 arithmetic, as published (float32 max edge times a Python float).
  query_radius = float(np.float32(max_edge) * radius_query_fraction_edge_length)

  grid_lat, grid_lon = grid_lib.grid_lat_lon(resolution, include_poles)
  grid_xyz = grid_mesh_connectivity.grid_positions(grid_lat, grid_lon)
  lon2d, lat2d = np.meshgrid(grid_lon, grid_lat)
  grid_node_lat = lat2d.reshape(-1).astype(np.float32)
  grid_node_lon = lon2d.reshape(-1).astype(np.float32)
  mesh_lat, mesh_lon = features.vertex_lat_lon(finest.vertices)

  # Grid -> mesh: radius query.
  g2m_grid, g2m_mesh = grid_mesh_connectivity.radius_query_edges(grid_xyz, finest, query_radius)
  g2m_features, g2m_norm = features.edge_features(
      grid_node_lat, grid_node_lon, mesh_lat, mesh_lon, g2m_grid, g2m_mesh
  )

  # Multi-mesh: edges of every refinement level's faces.
  merged = icosahedral_mesh.merge_meshes(meshes)
  mesh_senders, mesh_receivers = icosahedral_mesh.faces_to_edges(merged.faces)
  mesh_features, mesh_norm = features.edge_features(
      mesh_lat, mesh_lon, mesh_lat, mesh_lon, mesh_senders, mesh_receivers
  )

  # Mesh -> grid: corners of the face containing each grid point.
  m2g_grid, m2g_mesh = grid_mesh_connectivity.containing_triangle_edges(grid_xyz, finest)
  m2g_features, m2g_norm = features.edge_features(
      mesh_lat,
      mesh_lon,
      grid_node_lat,
      grid_node_lon,
      m2g_mesh,
      m2g_grid,
      normalization=mesh2grid_edge_normalization_factor,
  )

  return GraphCastGraphs(
      grid_lat=grid_lat,
      grid_lon=grid_lon,
      grid_node_features=features.node_features(grid_node_lat, grid_node_lon),
      mesh_node_features=features.node_features(mesh_lat, mesh_lon),
      mesh=EdgeSet(mesh_senders, mesh_receivers, mesh_features),
      grid2mesh=EdgeSet(g2m_grid, g2m_mesh, g2m_features),
      mesh2grid=EdgeSet(m2g_mesh, m2g_grid, m2g_features),
      mesh_lat=mesh_lat,
      mesh_lon=mesh_lon,
      mesh_size=mesh_size,
      finest_mesh_max_edge_length=max_edge,
      query_radius=query_radius,
      edge_normalization={"grid2mesh": g2m_norm, "mesh": mesh_norm, "mesh2grid": m2g_norm},
  )


_EDGE_SETS = ("mesh", "grid2mesh", "mesh2grid")
_ARRAYS = (
    "grid_lat",
    "grid_lon",
    "grid_node_features",
    "mesh_node_features",
    "mesh_lat",
    "mesh_lon",
)


def _to_arrays(graphs: GraphCastGraphs) -> dict[str, np.ndarray]:
  out = {name: getattr(graphs, name) for name in _ARRAYS}
  for name in _EDGE_SETS:
    edges = getattr(graphs, name)
    out[f"{name}_senders"] = edges.senders
    out[f"{name}_receivers"] = edges.receivers
    out[f"{name}_features"] = edges.features
    out[f"{name}_normalization"] = np.float64(graphs.edge_normalization[name])
  out["mesh_size"] = np.int64(graphs.mesh_size)
  out["finest_mesh_max_edge_length"] = np.float64(graphs.finest_mesh_max_edge_length)
  out["query_radius"] = np.float64(graphs.query_radius)
  return out


def _from_arrays(arrays: dict[str, np.ndarray]) -> GraphCastGraphs:
  edge_sets = {
      name: EdgeSet(
          arrays[f"{name}_senders"], arrays[f"{name}_receivers"], arrays[f"{name}_features"]
      )
      for name in _EDGE_SETS
  }
  return GraphCastGraphs(
      **{name: arrays[name] for name in _ARRAYS},
      **edge_sets,
      mesh_size=int(arrays["mesh_size"]),
      finest_mesh_max_edge_length=float(arrays["finest_mesh_max_edge_length"]),
      query_radius=float(arrays["query_radius"]),
      edge_normalization={name: float(arrays[f"{name}_normalization"]) for name in _EDGE_SETS},
  )
