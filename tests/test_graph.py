"""Tests of the GraphCast graphs: published sizes, orders, features, cache."""

import hashlib
import json
import os
import pathlib

from conftest import golden_dir
import numpy as np
import pytest

from graphcast_fdl import graph
from graphcast_fdl.graph import cache
from graphcast_fdl.graph import features
from graphcast_fdl.graph import icosahedral_mesh


@pytest.fixture(scope="module")
def g43():
  """4 deg with poles, mesh 3: the golden folders' graphs."""
  return graph.build_graphs(4.0, True, 3, cache_dir=None)


def _sha(*arrays):
  digest = hashlib.sha256()
  for a in arrays:
    digest.update(np.ascontiguousarray(a, np.int32).tobytes())
  return digest.hexdigest()[:16]


def test_sizes_match_golden_report(g43):
  report = pathlib.Path(golden_dir("a_4deg_m3_l32")) / "report.json"
  golden = json.loads(report.read_text())["graph"]
  sizes = g43.sizes()
  for name in (
      "grid_lat",
      "grid_lon",
      "grid_nodes",
      "mesh_levels",
      "mesh_nodes",
      "finest_mesh_faces",
      "multimesh_faces",
      "multimesh_edges",
      "grid2mesh_edges",
      "mesh2grid_edges",
      "grid_nodes_without_grid2mesh_edge",
  ):
    assert sizes[name] == golden[name], name
  assert sizes["finest_mesh_max_edge_length"] == golden["finest_mesh_max_edge_length"]
  # The published radius is float32 arithmetic; the report printed it in float64.
  np.testing.assert_allclose(
      sizes["grid2mesh_query_radius"], golden["grid2mesh_query_radius"], rtol=1e-6
  )
  assert (
      sizes["grid_nodes"],
      sizes["mesh_nodes"],
      sizes["multimesh_edges"],
      sizes["grid2mesh_edges"],
      sizes["mesh2grid_edges"],
  ) == (4140, 642, 5100, 6576, 12420)


def test_edges_and_features_match_published_code(g43):
  # Fingerprints of the published implementation's output at 4 deg / mesh 3.
  assert _sha(g43.grid2mesh.senders, g43.grid2mesh.receivers) == "d85883ef74f01654"
  assert _sha(g43.mesh.senders, g43.mesh.receivers) == "fd28dded6ab9f816"
  assert _sha(g43.mesh2grid.senders, g43.mesh2grid.receivers) == "843a2206f237e2a5"
  np.testing.assert_allclose(
      g43.grid2mesh.features[7],
      [0.9635306081259418, -0.045848024936284607, -6.885650181188899e-07, -0.9624391884189436],
      rtol=1e-6,
      atol=1e-7,
  )
  np.testing.assert_allclose(
      g43.mesh.features[7],
      [0.9999992853281923, -0.5257306152200599, 0.0, 0.8506502753054469],
      rtol=1e-6,
      atol=1e-7,
  )
  np.testing.assert_allclose(
      g43.mesh2grid.features[7],
      [0.6094204344049791, -0.02899823727757295, 0.5644049243214674, -0.22803387798050023],
      rtol=1e-6,
  )
  np.testing.assert_allclose(
      np.abs(g43.mesh2grid.features.astype(np.float64)).sum(0),
      [7374.958880984761, 385.3365462764283, 4647.491814930183, 4721.971497846476],
      rtol=1e-6,
  )
  np.testing.assert_allclose(
      g43.grid_node_features[100], [-0.9975640773773193, 0.7660444378852844, 0.6427875757217407]
  )
  np.testing.assert_allclose(
      g43.mesh_node_features[500], [-0.4459307789802551, 0.9096710681915283, -0.4153294861316681]
  )


def test_published_mesh6_counts_and_vertex_order():
  meshes = icosahedral_mesh.mesh_hierarchy(6)
  merged = icosahedral_mesh.merge_meshes(meshes)
  senders, receivers = icosahedral_mesh.faces_to_edges(merged.faces)
  assert merged.vertices.shape == (40962, 3)
  assert senders.shape == (327660,)
  # Published vertex positions (float32) of a first- and a third-level vertex.
  np.testing.assert_array_equal(meshes[1].vertices[0], meshes[6].vertices[0])
  np.testing.assert_allclose(
      meshes[6].vertices[12], [0.11026408523321152, 0.8090170621871948, 0.5773502588272095]
  )
  np.testing.assert_allclose(
      meshes[6].vertices[641], [-0.7578239440917969, 0.513375461101532, 0.4026767611503601]
  )


def test_icosahedron_is_oriented_with_a_face_on_top():
  ico = icosahedral_mesh.icosahedron()
  np.testing.assert_allclose(np.linalg.norm(ico.vertices, axis=1), 1, atol=1e-6)
  corners = ico.vertices[ico.faces].astype(np.float64)
  assert np.all(np.linalg.det(corners) > 0)  # counter-clockwise from outside
  top = np.argmax(corners[:, :, 2].mean(1))
  np.testing.assert_allclose(corners[top, :, 2], corners[top, 0, 2], atol=1e-6)


def test_multimesh_edges_are_unique_and_bidirectional(g43):
  pairs = g43.mesh.senders.astype(np.int64) * 1000 + g43.mesh.receivers
  back = g43.mesh.receivers.astype(np.int64) * 1000 + g43.mesh.senders
  assert np.unique(pairs).size == pairs.size
  np.testing.assert_array_equal(np.sort(pairs), np.sort(back))


def test_grid_node_order_is_lat_major(g43):
  lat = np.deg2rad(g43.grid_lat)
  n_lon = g43.grid_lon.size
  assert g43.grid_lat[0] == -90 and g43.grid_lat[-1] == 90
  assert g43.grid_lon[0] == 0 and g43.grid_lon[-1] == 356
  np.testing.assert_allclose(g43.grid_node_features[5 * n_lon + 7, 0], np.sin(lat[5]), atol=1e-6)
  np.testing.assert_allclose(
      g43.grid_node_features[5 * n_lon + 7, 1], np.cos(np.deg2rad(g43.grid_lon[7])), atol=1e-6
  )


def _check_invariants(g):
  n_grid, n_mesh = g.num_grid_nodes, g.num_mesh_nodes
  for nodes in (g.grid_node_features, g.mesh_node_features):
    assert nodes.dtype == np.float32 and nodes.shape[1] == 3
    np.testing.assert_allclose(nodes[:, 1] ** 2 + nodes[:, 2] ** 2, 1, atol=1e-6)
  for name, senders_n, receivers_n in (
      ("mesh", n_mesh, n_mesh),
      ("grid2mesh", n_grid, n_mesh),
      ("mesh2grid", n_mesh, n_grid),
  ):
    edges = getattr(g, name)
    assert edges.senders.dtype == np.int32 and edges.receivers.dtype == np.int32
    assert edges.features.dtype == np.float32
    assert edges.features.shape == (edges.num_edges, 4)
    assert edges.senders.max() < senders_n and edges.receivers.max() < receivers_n
    length, offset = edges.features[:, 0], edges.features[:, 1:]
    assert length.min() >= 0 and length.max() == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(np.linalg.norm(offset, axis=1), length, atol=1e-6)
    # In the receiver's frame the receiver is at (1, 0, 0) and the sender on
    # the unit sphere.
    sender = offset * g.edge_normalization[name] + [1, 0, 0]
    np.testing.assert_allclose(np.linalg.norm(sender, axis=1), 1, atol=1e-5)
  # Every grid node receives from exactly the 3 corners of one finest face.
  counts = np.bincount(g.mesh2grid.receivers, minlength=n_grid)
  assert np.all(counts == 3)
  corners = np.sort(g.mesh2grid.senders.reshape(-1, 3), axis=1)
  finest = icosahedral_mesh.mesh_hierarchy(g.mesh_size)[-1]
  faces = {tuple(f) for f in np.sort(finest.faces, axis=1).tolist()}
  assert all(tuple(c) in faces for c in corners.tolist())


def test_feature_invariants_with_poles(g43):
  _check_invariants(g43)


def test_grid_without_poles():
  g = graph.build_graphs(9.0, False, 2, cache_dir=None)
  np.testing.assert_allclose(g.grid_lat[[0, -1]], [-85.5, 85.5])
  assert g.sizes()["grid_nodes"] == 20 * 40
  assert g.mesh2grid.num_edges == 3 * 20 * 40
  _check_invariants(g)


def test_mesh2grid_normalization_factor_scales_features(g43):
  g = graph.build_graphs(4.0, True, 3, mesh2grid_edge_normalization_factor=0.5, cache_dir=None)
  assert g.edge_normalization["mesh2grid"] == 0.5
  np.testing.assert_allclose(
      g.mesh2grid.features * 0.5,
      g43.mesh2grid.features * g43.edge_normalization["mesh2grid"],
      atol=1e-6,
  )
  np.testing.assert_array_equal(g.grid2mesh.features, g43.grid2mesh.features)


def test_graphs_for_model_uses_model_config(tmp_path):
  from graphcast_fdl.model.config import ModelConfig  # pylint: disable=g-import-not-at-top

  config = ModelConfig(resolution=6.0, mesh_size=1)
  g = graph.graphs_for_model(config, cache_dir=tmp_path)
  assert g.sizes()["grid_nodes"] == 31 * 60 and g.num_mesh_nodes == 42


def test_cache_hit_is_identical_and_changed_input_misses(tmp_path):
  built = graph.build_graphs(6.0, True, 2, cache_dir=tmp_path)
  assert len(list(tmp_path.glob("*.npz"))) == 1
  loaded = graph.build_graphs(6.0, True, 2, cache_dir=tmp_path)
  for name in (
      "grid_lat",
      "grid_lon",
      "grid_node_features",
      "mesh_node_features",
      "mesh_lat",
      "mesh_lon",
  ):
    np.testing.assert_array_equal(getattr(loaded, name), getattr(built, name))
  for name in ("mesh", "grid2mesh", "mesh2grid"):
    for field in ("senders", "receivers", "features"):
      a, b = getattr(getattr(loaded, name), field), getattr(getattr(built, name), field)
      assert a.dtype == b.dtype
      np.testing.assert_array_equal(a, b)
  assert loaded.sizes() == built.sizes()
  assert loaded.edge_normalization == built.edge_normalization
  graph.build_graphs(6.0, True, 2, radius_query_fraction_edge_length=0.7, cache_dir=tmp_path)
  assert len(list(tmp_path.glob("*.npz"))) == 2
  assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_cache_file_is_rebuilt(tmp_path):
  graph.build_graphs(6.0, False, 1, cache_dir=tmp_path)
  (path,) = tmp_path.glob("*.npz")
  path.write_bytes(b"not a zip")
  g = graph.build_graphs(6.0, False, 1, cache_dir=tmp_path)
  assert g.num_mesh_nodes == 42
  assert graph.build_graphs(6.0, False, 1, cache_dir=tmp_path).num_mesh_nodes == 42


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "c"))
  assert cache.resolve_dir(graph.DEFAULT) == tmp_path / "c"
  monkeypatch.delenv(cache.ENV_VAR)
  assert cache.resolve_dir(graph.DEFAULT) == (
      pathlib.Path(os.path.expanduser("~")) / ".cache" / "graphcast_fdl" / "graphs"
  )
  assert cache.resolve_dir(None) is None


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(resolution=0.7), "resolution"),
        (dict(resolution=0.0), "resolution"),
        (dict(mesh_size=-1), "mesh_size"),
        (dict(mesh_size=1.5), "mesh_size"),
        (dict(include_poles="yes"), "include_poles"),
        (dict(radius_query_fraction_edge_length=0.0), "radius_query_fraction_edge_length"),
        (dict(mesh2grid_edge_normalization_factor=-1.0), "mesh2grid_edge_normalization_factor"),
    ],
)
def test_bad_input_names_the_argument(kwargs, field):
  args = dict(resolution=6.0, include_poles=True, mesh_size=1, cache_dir=None)
  args.update(kwargs)
  with pytest.raises(ValueError) as error:
    graph.build_graphs(**args)
  message = str(error.value)
  assert message.startswith(field + "=") and "\n" not in message


def test_vertex_lat_lon_round_trip():
  lat = np.array([-60.0, 0.0, 45.0], np.float32)
  lon = np.array([10.0, 200.0, 359.0], np.float32)
  xyz = np.stack(
      [
          np.cos(np.deg2rad(lat)) * np.cos(np.deg2rad(lon)),
          np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(lon)),
          np.sin(np.deg2rad(lat)),
      ],
      axis=1,
  ).astype(np.float32)
  got_lat, got_lon = features.vertex_lat_lon(xyz)
  np.testing.assert_allclose(got_lat, lat, atol=1e-4)
  np.testing.assert_allclose(got_lon, lon, atol=1e-4)


@pytest.mark.slow
def test_published_quarter_degree_mesh6_sizes():
  # What the published code (v0.2, numpy 2.4 / scipy 1.17) builds for ERA5.
  g = graph.build_graphs(0.25, True, 6, cache_dir=None)
  sizes = g.sizes()
  assert (
      sizes["grid_nodes"],
      sizes["mesh_nodes"],
      sizes["multimesh_edges"],
      sizes["grid2mesh_edges"],
      sizes["mesh2grid_edges"],
  ) == (1038240, 40962, 327660, 1618818, 3114720)
