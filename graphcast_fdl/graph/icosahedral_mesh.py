"""Icosahedral meshes refined by 4-way face splits, and the multi-mesh.

Vertex and face orderings follow the published GraphCast construction exactly
(same 12 starting vertices and 20 faces, children of each split created in
face order, edge by edge), so mesh node indices line up with a published
checkpoint's mesh-node latents. Vertices are float32, as published: the lat/lon
features of mesh nodes are derived from these float32 positions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import transform


@dataclasses.dataclass(frozen=True)
class TriangularMesh:
  """A triangulated unit sphere.

  Attributes:
    vertices: [num_vertices, 3] float32 unit vectors.
    faces: [num_faces, 3] int32 vertex indices, counter-clockwise seen from
      outside (so face normals point outwards).
  """

  vertices: np.ndarray
  faces: np.ndarray


def icosahedron() -> TriangularMesh:
  """The regular icosahedron inscribed in the unit sphere, oriented as published.

  Starts from the textbook vertices (+-1, +-phi, 0) and cyclic permutations and
  turns it about the y axis so that one face lies flat on top (a face centre,
  not a vertex, sits at each pole).
  """
  phi = (1 + np.sqrt(5)) / 2
  corners = []
  for a in (1.0, -1.0):
    for b in (phi, -phi):
      corners += [(a, b, 0.0), (0.0, a, b), (b, 0.0, a)]
  vertices = np.array(corners, np.float32)
  # Published divides a float32 array in place by a float64 norm.
  vertices = (vertices / np.linalg.norm([1.0, phi])).astype(np.float32)
  faces = np.array(
      [
          (0, 1, 2),
          (0, 6, 1),
          (8, 0, 2),
          (8, 4, 0),
          (3, 8, 2),
          (3, 2, 7),
          (7, 2, 1),
          (0, 4, 6),
          (4, 11, 6),
          (6, 11, 5),
          (1, 5, 7),
          (4, 10, 11),
          (4, 8, 10),
          (10, 8, 3),
          (10, 3, 9),
          (11, 10, 9),
          (11, 9, 5),
          (5, 9, 7),
          (9, 3, 7),
          (1, 6, 5),
      ],
      np.int32,
  )
  # Tilt by half the supplement of the dihedral angle so a face is horizontal.
  dihedral = 2 * np.arcsin(phi / np.sqrt(3))
  rotation = transform.Rotation.from_euler(seq="y", angles=(np.pi - dihedral) / 2).as_matrix()
  vertices = np.dot(vertices, rotation).astype(np.float32)
  return TriangularMesh(vertices=vertices, faces=faces)


def split_faces(mesh: TriangularMesh) -> TriangularMesh:
  """Splits every face into 4 at its edge midpoints, pushed onto the sphere.

  New vertices are appended after the old ones, numbered in the order their
  edge is first met when walking faces in order and, within a face, the edges
  (v0, v1), (v1, v2), (v2, v0). Children keep the parent's orientation.

  Args:
    mesh: mesh with F faces and V vertices.

  Returns:
    Mesh with 4F faces and V + (number of edges) vertices.
  """
  faces = mesh.faces
  num_vertices = mesh.vertices.shape[0]
  # [F, 3, 2]: each face's three edges, in walking order.
  edges = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=1)
  flat = edges.reshape(-1, 2).astype(np.int64)
  keys = flat.min(axis=1) * num_vertices + flat.max(axis=1)
  _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
  # Number the unique edges by first appearance.
  order = np.argsort(first, kind="stable")
  rank = np.empty_like(order)
  rank[order] = np.arange(order.size)
  child_of_edge = (num_vertices + rank[inverse]).reshape(-1, 3)
  # Child positions, in child order, from the edge's first appearance.
  ends = flat[first[order]]
  parents = mesh.vertices
  child = (parents[ends[:, 0]] + parents[ends[:, 1]]) / np.float32(2)
  child = child / _norm_f32(child)[:, None]
  vertices = np.concatenate([parents, child.astype(np.float32)], axis=0)

  v1, v2, v3 = faces[:, 0], faces[:, 1], faces[:, 2]
  c12, c23, c31 = child_of_edge[:, 0], child_of_edge[:, 1], child_of_edge[:, 2]
  new_faces = (
      np.stack(
          [
              np.stack([v1, c12, c31], axis=1),
              np.stack([c12, v2, c23], axis=1),
              np.stack([c31, c23, v3], axis=1),
              np.stack([c12, c23, c31], axis=1),
          ],
          axis=1,
      )
      .reshape(-1, 3)
      .astype(np.int32)
  )
  return TriangularMesh(vertices=vertices, faces=new_faces)


def _norm_f32(x: np.ndarray) -> np.ndarray:
  """Row norms of float32 [N, 3], bit-identical to the published per-row norm.

  The published code calls `np.linalg.norm` on one float32 row at a time,
  which is a BLAS dot product; `np.vecdot` takes the same BLAS path (a plain
  sum of squares differs in the last bit for ~10% of rows).
  """
  x = x.astype(np.float32)
  return np.sqrt(np.vecdot(x, x))


def mesh_hierarchy(splits: int) -> list[TriangularMesh]:
  """Meshes refined 0..splits times; each one's vertices start with the previous'."""
  meshes = [icosahedron()]
  for _ in range(splits):
    meshes.append(split_faces(meshes[-1]))
  return meshes


def merge_meshes(meshes: list[TriangularMesh]) -> TriangularMesh:
  """The multi-mesh: finest vertices, and the faces of every level concatenated.

  Coarse-level faces become long-range edges between the same (finest-level)
  vertex indices, since each level's vertices are a prefix of the next's.
  """
  for coarse, fine in zip(meshes[:-1], meshes[1:]):
    n = coarse.vertices.shape[0]
    if not np.array_equal(coarse.vertices, fine.vertices[:n]):
      raise ValueError("meshes: each level's vertices must prefix the next's")
  return TriangularMesh(
      vertices=meshes[-1].vertices, faces=np.concatenate([m.faces for m in meshes], axis=0)
  )


def faces_to_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Directed edges v0->v1, v1->v2, v2->v0 of every face, as published.

  Ordered as all first edges, then all second, then all third. On a closed,
  consistently oriented surface every edge appears once in each direction, so
  the result is bidirectional with no duplicates (edges of different
  refinement levels never share both ends).

  Args:
    faces: [F, 3] int.

  Returns:
    senders, receivers: [3F] int32 each.
  """
  senders = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
  receivers = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
  return senders.astype(np.int32), receivers.astype(np.int32)


def max_edge_length(mesh: TriangularMesh) -> float:
  """Longest straight-line (chord) edge of the mesh, computed in float32."""
  senders, receivers = faces_to_edges(mesh.faces)
  diff = mesh.vertices[senders] - mesh.vertices[receivers]
  return float(np.linalg.norm(diff, axis=-1).max())
