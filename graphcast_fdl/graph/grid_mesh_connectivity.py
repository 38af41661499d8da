"""Connectivity of a regular lat/lon grid (see `graphcast_fdl.grid`) to a mesh.

Grid nodes are numbered as the published model flattens a `[lat, lon]` field:
`node = lat_index * num_lon + lon_index`, latitudes ascending from the south
(-90 first when the grid has poles), longitudes ascending from 0.

Positions are computed from float32 lat/lon, as the published model casts its
grid coordinates to float32 before building graphs; this matters only for
which edges lie exactly on a radius or a triangle boundary.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import spatial
import trimesh

from graphcast_fdl.graph import icosahedral_mesh

# Tolerance trimesh's closest-point query uses to call two faces equally close.
_TRIMESH_MERGE_TOL = trimesh.tol.merge


def grid_positions(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
  """Unit vectors [num_lat * num_lon, 3] (float32) of the grid nodes, in node order."""
  lon_rad = np.deg2rad(np.asarray(lon, np.float32))
  colat_rad = np.deg2rad(90 - np.asarray(lat, np.float32))
  phi, theta = np.meshgrid(lon_rad, colat_rad)  # each [num_lat, num_lon]
  xyz = np.stack([np.cos(phi) * np.sin(theta), np.sin(phi) * np.sin(theta), np.cos(theta)], axis=-1)
  return xyz.reshape(-1, 3)


def radius_query_edges(
    grid_xyz: np.ndarray, mesh: icosahedral_mesh.TriangularMesh, radius: float
) -> tuple[np.ndarray, np.ndarray]:
  """Grid->mesh pairs closer than `radius` (straight line, unit sphere).

  The published code asks a KD-tree of mesh vertices for each grid point's
  neighbours (`query_ball_point`), which builds a Python list per grid point
  (8 s at 0.25 deg). Here one tree-to-tree query returns all pairs as arrays;
  the grid points with a pair within float round-off of the radius, where the
  two queries could disagree, are asked the published way.

  Args:
    grid_xyz: [num_grid, 3] grid node positions.
    mesh: the finest mesh.
    radius: inclusive chord-distance threshold.

  Returns:
    grid_indices, mesh_indices: [num_edges] int32, ordered by grid node and,
    within a grid node, by mesh node (the published order).
  """
  mesh_tree = spatial.cKDTree(mesh.vertices)
  grid_tree = spatial.cKDTree(grid_xyz)
  band = 1e-7 * radius
  pairs = grid_tree.sparse_distance_matrix(mesh_tree, radius + band, output_type="ndarray")
  grid_idx, mesh_idx, dist = pairs["i"], pairs["j"], pairs["v"]
  unsure = np.unique(grid_idx[np.abs(dist - radius) <= band])
  keep = (dist <= radius) & ~np.isin(grid_idx, unsure)
  grid_idx, mesh_idx = grid_idx[keep], mesh_idx[keep]
  if unsure.size:
    neighbours = mesh_tree.query_ball_point(grid_xyz[unsure], r=radius, return_sorted=True)
    counts = np.fromiter(map(len, neighbours), np.int64, len(neighbours))
    grid_idx = np.concatenate([grid_idx, np.repeat(unsure, counts)])
    mesh_idx = np.concatenate(
        [mesh_idx, np.fromiter(itertools.chain.from_iterable(neighbours), np.int64, counts.sum())]
    )
  order = np.lexsort((mesh_idx, grid_idx))
  return (grid_idx[order].astype(np.int32), mesh_idx[order].astype(np.int32))


def containing_faces(grid_xyz: np.ndarray, mesh: icosahedral_mesh.TriangularMesh) -> np.ndarray:
  """Index of the mesh face each grid point falls in, as published.

  The published code asks `trimesh.proximity.closest_point` for the face
  holding the closest point on the flat-faced mesh to each grid point. That
  also settles ties its own way: within `trimesh.tol.merge` squared distance
  the face whose normal best faces the point wins, and exact ties (grid points
  on the lon=0 meridian, a mirror plane of the mesh) go to whichever candidate
  its r-tree lists and numpy's argsort put first. Querying every point that
  way takes minutes at 0.25 deg, so:
  1. find the face whose spherical triangle holds the point (3 sign tests);
  2. keep it where every other face is provably farther by more than the tie
     tolerance: any other face is at least `min_e <p, n_e>` away (n_e: unit
     normals of the face's great-circle edges), while this face is at most
     the radial drop from p to its plane away;
  3. ask trimesh, exactly as published, for the points left (near an edge or
     vertex: a few percent). Its answer for a point depends on that point only.

  Args:
    grid_xyz: [num_grid, 3] unit vectors (float32, as published).
    mesh: finest mesh.

  Returns:
    [num_grid] int64 face indices.
  """
  points = np.asarray(grid_xyz, np.float64)
  faces = mesh.faces
  corners = mesh.vertices.astype(np.float64)[faces]  # [F, 3, 3]
  # Unit normals of each face's great-circle edge planes, pointing inwards
  # for counter-clockwise faces: p is inside iff all three dots are >= 0.
  edge_normals = np.cross(corners, np.roll(corners, -1, axis=1))
  edge_normals /= np.linalg.norm(edge_normals, axis=-1, keepdims=True)
  plane_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  plane_normals /= np.linalg.norm(plane_normals, axis=-1, keepdims=True)
  plane_offsets = np.einsum("fi,fi->f", plane_normals, corners[:, 0])
  centroids = corners.mean(axis=1)
  tree = spatial.cKDTree(centroids)

  # 1. Spherical containment among the nearest few face centroids.
  num_points = points.shape[0]
  face = np.full(num_points, -1, np.int64)
  margin = np.zeros(num_points)
  for k in (4, 8, 16, 64):
    todo = np.nonzero(face < 0)[0]
    if todo.size == 0:
      break
    k = min(k, faces.shape[0])
    _, candidates = tree.query(points[todo], k=k, workers=-1)
    candidates = candidates.reshape(todo.size, k)
    # [P, k]: smallest of the three edge-plane dots, >= 0 when inside.
    dots = np.einsum("pkei,pi->pke", edge_normals[candidates], points[todo]).min(axis=-1)
    best = dots.argmax(axis=1)
    best_dot = np.take_along_axis(dots, best[:, None], axis=1)[:, 0]
    inside = best_dot >= 0
    face[todo[inside]] = candidates[inside, best[inside]]
    margin[todo[inside]] = best_dot[inside]

  # 2. Where that face provably is trimesh's answer. (Points found in no face
  # by float round-off have face -1 and go to step 3.)
  safe_face = np.maximum(face, 0)
  scale = plane_offsets[safe_face] / np.einsum("pi,pi->p", plane_normals[safe_face], points)
  upper_sq = (1 - scale) ** 2
  settled = (face >= 0) & (margin**2 > upper_sq + _TRIMESH_MERGE_TOL + 1e-12)

  # 3. The published query for the rest.
  hard = np.nonzero(~settled)[0]
  if hard.size:
    published_mesh = trimesh.Trimesh(vertices=mesh.vertices, faces=faces)
    _, _, face[hard] = trimesh.proximity.closest_point(published_mesh, points[hard])
  return face


def containing_triangle_edges(
    grid_xyz: np.ndarray, mesh: icosahedral_mesh.TriangularMesh
) -> tuple[np.ndarray, np.ndarray]:
  """Mesh->grid pairs: each grid node with the 3 corners of its mesh face.

  Returns:
    grid_indices, mesh_indices: [3 * num_grid] int32, grid-node major, corners
    in the face's vertex order (the published order).
  """
  face = containing_faces(grid_xyz, mesh)
  mesh_indices = mesh.faces[face].reshape(-1).astype(np.int32)
  grid_indices = np.repeat(np.arange(grid_xyz.shape[0], dtype=np.int32), 3)
  return grid_indices, mesh_indices
