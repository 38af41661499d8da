"""Splits the GraphCast graphs over K devices that share one example.

Spatial parallelism gives each device a part of the grid, a part of the mesh
and every edge that ends in them; message passing then needs, per edge set,
only the sender rows that live on another device (its halo). The split:
- grid nodes: K contiguous runs of whole rows of the published node order,
  which is lat-major, so each part is a latitude band and the example's
  [..., lat, lon] arrays split into the same bands along lat. Parts hold
  ceil(rows / K) rows; only the last is shorter.
- mesh nodes: in the grid's bands, cut at the latitudes halfway between
  the grid bands' edge rows (each part then in the published order), which
  keeps the two large bipartite edge sets (grid->mesh, mesh->grid) inside a
  part but for a strip one edge radius wide at each cut. Grid bands are
  equal in rows, not in area, so the equatorial mesh bands hold more nodes
  (at K = 4, 35% each, padding the others to it); equal-count mesh bands
  instead ended at other latitudes than the grid's and cut 0.16 of the
  edges (0.25 deg, K = 4: 90k halo rows per block instead of a few
  thousand). Without grid latitudes (`mesh_partition` alone) the bands are
  equal in size.
- edges of all three sets: on the part of their receiver, so receivers' sums
  never leave their device.
Every part is padded to the largest part's size (shard_map needs equal
shapes); padding nodes have no edges, padding edges send from local row 0
into a dummy receiver one past the last local row (dropped by the sums).

Local sender indices address an extended table: the part's own rows, then
K blocks of `halo_size` rows, block q holding the rows received from part q
(`send_rows[q, p]` are the local rows part q sends to part p).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class NodePartition:
  """Which part owns each node, and where.

  Attributes:
    part: [N] int32 part of each node.
    local: [N] int32 row of each node within its part.
    nodes: [K, size] int32 node held in each local row, -1 for padding.
  """

  part: np.ndarray
  local: np.ndarray
  nodes: np.ndarray

  @property
  def num_parts(self) -> int:
    return self.nodes.shape[0]

  @property
  def size(self) -> int:
    """Rows per part, padding included."""
    return self.nodes.shape[1]


@dataclasses.dataclass(frozen=True, eq=False)
class EdgePartition:
  """One edge set split by its receivers' parts.

  Attributes:
    edges: [K, size] int32 global edge index per local edge, -1 for padding;
      within a part, sorted by local receiver, then by global index.
    senders: [K, size] int32 rows of the extended sender table.
    receivers: [K, size] int32 local receiver rows, ascending; padding edges
      receive into row `receiver_size` (dropped).
    features: [K, size, F] float32 (zeros for padding).
    send_rows: [K, K, halo_size] int32: send_rows[q, p] are the local rows of
      part q that part p needs, padded with row 0.
    num_cut: edges whose sender lives on another part than their receiver.
  """

  edges: np.ndarray
  senders: np.ndarray
  receivers: np.ndarray
  features: np.ndarray
  send_rows: np.ndarray
  num_cut: int

  @property
  def halo_size(self) -> int:
    return self.send_rows.shape[2]

  @property
  def num_edges(self) -> int:
    return int((self.edges >= 0).sum())

  @property
  def cut_fraction(self) -> float:
    return self.num_cut / max(self.num_edges, 1)


@dataclasses.dataclass(frozen=True, eq=False)
class GraphPartition:
  """The grid, the mesh and the three edge sets split over K parts."""

  grid: NodePartition
  mesh: NodePartition
  grid2mesh: EdgePartition
  mesh_edges: EdgePartition
  mesh2grid: EdgePartition

  @property
  def num_parts(self) -> int:
    return self.grid.num_parts

  def edge_sets(self) -> dict[str, EdgePartition]:
    return {"grid2mesh": self.grid2mesh, "mesh": self.mesh_edges, "mesh2grid": self.mesh2grid}

  @property
  def cut_fraction(self) -> float:
    """Fraction of all edges whose sender is on another part."""
    sets = self.edge_sets().values()
    return sum(e.num_cut for e in sets) / max(sum(e.num_edges for e in sets), 1)


def _node_partition(order: np.ndarray, num_parts: int, unit: int = 1) -> NodePartition:
  """Nodes in `order` cut into runs of ceil(n / K) (the last one shorter),
  rounded up to whole `unit`s of nodes.

  Within a part, nodes keep their global order: sums over a part's nodes or
  edges then run in the unsplit model's order, so results differ from it
  only by how the K partial sums are added.
  """
  n = order.shape[0]
  size = max(-(-n // (num_parts * unit)) * unit, 1)
  nodes = np.full(num_parts * size, -1, np.int32)
  nodes[:n] = order
  nodes = nodes.reshape(num_parts, size)
  for p in range(num_parts):
    real = nodes[p] >= 0
    nodes[p, real] = np.sort(nodes[p, real])
  part = np.empty(n, np.int32)
  local = np.empty(n, np.int32)
  flat = nodes.reshape(-1)
  real = flat >= 0
  part[flat[real]] = np.flatnonzero(real) // size
  local[flat[real]] = np.flatnonzero(real) % size
  return NodePartition(part=part, local=local, nodes=nodes)


def grid_partition(num_grid: int, num_parts: int, row_length: int = 1) -> NodePartition:
  """Latitude bands: contiguous runs of whole rows (of `row_length` nodes)
  of the lat-major grid node order."""
  return _node_partition(np.arange(num_grid, dtype=np.int32), num_parts, row_length)


def lat_lon(node_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Degrees (lat, lon in [0, 360)) from [sin lat, cos lon, sin lon]."""
  f = np.asarray(node_features, np.float64)
  lat = np.rad2deg(np.arcsin(np.clip(f[:, 0], -1, 1)))
  lon = np.mod(np.rad2deg(np.arctan2(f[:, 2], f[:, 1])), 360)
  return lat, lon


def mesh_partition(
    mesh_node_features: np.ndarray, num_parts: int, cuts: np.ndarray | None = None
) -> NodePartition:
  """Latitude bands of the mesh nodes (see the module docstring): cut at
  the ascending latitudes `cuts` (K - 1 of them), else equal in size."""
  lat, lon = lat_lon(mesh_node_features)
  if cuts is None:
    order = np.lexsort((lon, lat)).astype(np.int32)
    return _node_partition(order, num_parts)
  part = np.searchsorted(np.asarray(cuts), lat).astype(np.int32)
  counts = np.bincount(part, minlength=num_parts)
  size = max(int(counts.max()), 1)
  nodes = np.full((num_parts, size), -1, np.int32)
  local = np.empty(lat.shape[0], np.int32)
  for p in range(num_parts):
    mine = np.flatnonzero(part == p).astype(np.int32)  # published order
    nodes[p, : mine.shape[0]] = mine
    local[mine] = np.arange(mine.shape[0], dtype=np.int32)
  return NodePartition(part=part, local=local, nodes=nodes)


def band_cuts(grid_lat: np.ndarray, grid: NodePartition, row_length: int) -> np.ndarray:
  """Latitudes halfway between neighbouring grid bands' edge rows."""
  rows = grid.size // row_length
  lat = np.asarray(grid_lat, np.float64)
  edges = [rows * p for p in range(1, grid.num_parts) if rows * p < lat.shape[0]]
  cuts = [(lat[r - 1] + lat[r]) / 2 for r in edges]
  cuts += [np.inf] * (grid.num_parts - 1 - len(cuts))  # empty northern parts
  return np.asarray(cuts)


def edge_partition(edge_set, senders: NodePartition, receivers: NodePartition) -> EdgePartition:
  """Edges on their receivers' parts, with the halos their senders need."""
  num_parts = receivers.num_parts
  s = np.asarray(edge_set.senders, np.int64)
  r = np.asarray(edge_set.receivers, np.int64)
  features = np.asarray(edge_set.features, np.float32)
  s_part, s_local = senders.part[s], senders.local[s]
  r_part, r_local = receivers.part[r], receivers.local[r]
  cut = s_part != r_part

  # Halo of part p: its cut edges' senders, per owner q, in local-row order.
  halos = {}
  for p in range(num_parts):
    into_p = cut & (r_part == p)
    for q in range(num_parts):
      rows = np.unique(s_local[into_p & (s_part == q)])
      halos[q, p] = rows
  halo_size = max((len(v) for v in halos.values()), default=0)
  send_rows = np.zeros((num_parts, num_parts, halo_size), np.int32)
  for (q, p), rows in halos.items():
    send_rows[q, p, : len(rows)] = rows

  counts = np.bincount(r_part, minlength=num_parts)
  size = max(int(counts.max()) if counts.size else 0, 1)
  out_edges = np.full((num_parts, size), -1, np.int32)
  out_senders = np.zeros((num_parts, size), np.int32)
  out_receivers = np.full((num_parts, size), receivers.size, np.int32)
  out_features = np.zeros((num_parts, size, features.shape[1]), np.float32)
  for p in range(num_parts):
    mine = np.flatnonzero(r_part == p)
    mine = mine[np.lexsort((mine, r_local[mine]))]
    local_senders = s_local[mine].copy()
    for q in range(num_parts):
      from_q = cut[mine] & (s_part[mine] == q)
      position = np.searchsorted(halos[q, p], s_local[mine][from_q])
      local_senders[from_q] = senders.size + q * halo_size + position
    k = mine.shape[0]
    out_edges[p, :k] = mine
    out_senders[p, :k] = local_senders
    out_receivers[p, :k] = r_local[mine]
    out_features[p, :k] = features[mine]
  return EdgePartition(
      edges=out_edges,
      senders=out_senders,
      receivers=out_receivers,
      features=out_features,
      send_rows=send_rows,
      num_cut=int(cut.sum()),
  )


def partition_graphs(graphs, num_parts: int) -> GraphPartition:
  """Splits `graph.GraphCastGraphs` (or anything with its fields) K ways."""
  if isinstance(num_parts, bool) or not isinstance(num_parts, int) or (num_parts < 1):
    raise ValueError(f"num_parts={num_parts!r}: must be a whole number >= 1")
  num_grid = np.asarray(graphs.grid_node_features).shape[0]
  row_length = len(graphs.grid_lon) if hasattr(graphs, "grid_lon") else 1
  grid = grid_partition(num_grid, num_parts, row_length)
  cuts = None
  if hasattr(graphs, "grid_lat"):
    cuts = band_cuts(graphs.grid_lat, grid, row_length)
  mesh = mesh_partition(graphs.mesh_node_features, num_parts, cuts)
  return GraphPartition(
      grid=grid,
      mesh=mesh,
      grid2mesh=edge_partition(graphs.grid2mesh, grid, mesh),
      mesh_edges=edge_partition(graphs.mesh, mesh, mesh),
      mesh2grid=edge_partition(graphs.mesh2grid, mesh, grid),
  )


def random_partition_cut_fraction(graphs, num_parts: int, seed: int = 0) -> float:
  """Cut fraction of a random balanced node assignment, for comparison."""
  rng = np.random.default_rng(seed)

  def random(n):
    return _node_partition(rng.permutation(n).astype(np.int32), num_parts)

  grid = random(np.asarray(graphs.grid_node_features).shape[0])
  mesh = random(np.asarray(graphs.mesh_node_features).shape[0])
  cut = total = 0
  for edge_set, s, r in (
      (graphs.grid2mesh, grid, mesh),
      (graphs.mesh, mesh, mesh),
      (graphs.mesh2grid, mesh, grid),
  ):
    cut += int((s.part[edge_set.senders] != r.part[edge_set.receivers]).sum())
    total += len(edge_set.senders)
  return cut / max(total, 1)
