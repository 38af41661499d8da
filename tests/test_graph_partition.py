"""Splitting the graphs over devices: every node and edge once, few cut edges."""

import numpy as np
import pytest

from graphcast_fdl import graph
from graphcast_fdl.graph import partition


@pytest.fixture(scope="module")
def graphs():
  return graph.build_graphs(4.0, True, 3, cache_dir=None)


def _global_edges(edges: partition.EdgePartition, senders, receivers):
  """(edge ids, global senders, global receivers) read back from the parts."""
  ids, s, r = [], [], []
  for p in range(edges.edges.shape[0]):
    real = edges.edges[p] >= 0
    local_s = edges.senders[p][real]
    own = local_s < senders.size
    halo = local_s[~own] - senders.size
    glob = np.empty_like(local_s)
    glob[own] = senders.nodes[p, local_s[own]]
    if edges.halo_size:
      owner, position = np.divmod(halo, edges.halo_size)
      glob[~own] = senders.nodes[owner, edges.send_rows[owner, p, position]]
    ids.append(edges.edges[p][real])
    s.append(glob)
    r.append(receivers.nodes[p, edges.receivers[p][real]])
  return np.concatenate(ids), np.concatenate(s), np.concatenate(r)


@pytest.mark.parametrize("num_parts", [1, 2, 3, 4])
def test_every_node_and_edge_once_and_edges_read_back(graphs, num_parts):
  parts = partition.partition_graphs(graphs, num_parts)
  n_lon = len(graphs.grid_lon)
  for nodes, n in ((parts.grid, graphs.num_grid_nodes), (parts.mesh, graphs.num_mesh_nodes)):
    held = nodes.nodes[nodes.nodes >= 0]
    np.testing.assert_array_equal(np.sort(held), np.arange(n))
    np.testing.assert_array_equal(nodes.nodes[nodes.part, nodes.local], np.arange(n))
    # Within a part, nodes keep the published order.
    for p in range(num_parts):
      real = nodes.nodes[p][nodes.nodes[p] >= 0]
      assert np.all(np.diff(real) > 0)
  # Grid balanced: ceil(rows / K) whole rows per part, real rows differ by < K.
  rows = -(-len(graphs.grid_lat) // num_parts)
  assert parts.grid.size == rows * n_lon
  real = (parts.grid.nodes >= 0).sum(axis=1)
  assert real.max() - real.min() < num_parts * n_lon
  # The grid parts are the bands of the [lat, lon] grid padded to K bands.
  n_lat = len(graphs.grid_lat)
  padded = np.full(rows * num_parts * n_lon, -1)
  padded[: n_lat * n_lon] = np.arange(n_lat * n_lon)
  np.testing.assert_array_equal(parts.grid.nodes.reshape(-1), padded)
  # Mesh bands end where the grid's do: each mesh node lies between its
  # part's cuts (halfway between the grid bands' edge rows).
  mesh_lat, _ = partition.lat_lon(graphs.mesh_node_features)
  cuts = np.concatenate(
      [[-np.inf], partition.band_cuts(graphs.grid_lat, parts.grid, n_lon), [np.inf]]
  )
  part = parts.mesh.part
  assert np.all((cuts[part] <= mesh_lat) & (mesh_lat <= cuts[part + 1]))
  for name, s, r in (
      ("grid2mesh", parts.grid, parts.mesh),
      ("mesh", parts.mesh, parts.mesh),
      ("mesh2grid", parts.mesh, parts.grid),
  ):
    edges = parts.edge_sets()[name]
    original = getattr(graphs, name)
    ids, senders, receivers = _global_edges(edges, s, r)
    np.testing.assert_array_equal(np.sort(ids), np.arange(original.num_edges))
    np.testing.assert_array_equal(senders, original.senders[ids])
    np.testing.assert_array_equal(receivers, original.receivers[ids])
    for p in range(num_parts):
      assert np.all(np.diff(edges.receivers[p]) >= 0)
      real = edges.edges[p] >= 0
      np.testing.assert_array_equal(
          edges.features[p][real], original.features[edges.edges[p][real]]
      )
      assert np.all(edges.receivers[p][~real] == r.size)
    # Receivers live where their edges are: each edge is on its receiver's part.
    owner = np.repeat(np.arange(num_parts), edges.edges.shape[1])
    flat = edges.edges.reshape(-1)
    np.testing.assert_array_equal(r.part[original.receivers[flat[flat >= 0]]], owner[flat >= 0])


def test_grid_parts_are_latitude_bands(graphs):
  parts = partition.partition_graphs(graphs, 4)
  n_lon = len(graphs.grid_lon)
  rows = [np.unique(parts.grid.nodes[p][parts.grid.nodes[p] >= 0] // n_lon) for p in range(4)]
  for p in range(4):
    np.testing.assert_array_equal(rows[p], np.arange(rows[p][0], rows[p][-1] + 1))
    # Whole rows: the example's [..., lat, lon] arrays split into the same bands.
    assert (parts.grid.nodes[p] >= 0).sum() == len(rows[p]) * n_lon
    if p:  # Neighbouring bands share no row.
      assert rows[p][0] == rows[p - 1][-1] + 1


@pytest.mark.parametrize("num_parts,bound", [(1, 0.0), (2, 0.05), (4, 0.12)])
def test_cut_fraction_small_and_below_random(graphs, num_parts, bound):
  parts = partition.partition_graphs(graphs, num_parts)
  assert parts.cut_fraction <= bound
  if num_parts > 1:
    random = partition.random_partition_cut_fraction(graphs, num_parts)
    assert random > 0.45
    assert parts.cut_fraction < random / 3
    assert 0 < parts.mesh_edges.halo_size < parts.mesh.size


def test_bad_num_parts_names_the_field(graphs):
  with pytest.raises(ValueError, match="num_parts=0"):
    partition.partition_graphs(graphs, 0)
