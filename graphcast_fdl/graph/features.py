"""Structural node and edge features of the GraphCast graphs, as published.

Node features: [cos(colatitude), cos(lon), sin(lon)] = [sin(lat), cos(lon),
sin(lon)], all in [-1, 1].

Edge features: [length, dx, dy, dz] / normalisation, where (dx, dy, dz) is
sender minus receiver position after rotating both so that the receiver sits
at lat 0, lon 0 (i.e. at (1, 0, 0)): first about z by -lon, then about y by
+lat of the receiver. Lengths are straight-line (chord) distances on the unit
sphere, normalised by the longest edge of the set unless a factor is given,
so lengths lie in [0, 1] and offsets in [-1, 1].

Dtypes follow the published code (float32 angles, float64 rotations) so that
the float32 results match it to the last bit or two.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import transform

_CHUNK = 1 << 18  # Edges rotated at a time, to bound [chunk, 3, 3] temporaries.


def vertex_lat_lon(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Latitude and longitude (degrees, float32, lon in [0, 360)) of unit vectors [N, 3]."""
  x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
  phi = np.arctan2(y, x)
  with np.errstate(invalid="ignore"):
    theta = np.arccos(z)
  lon = np.mod(np.rad2deg(phi), 360)
  lat = 90 - np.rad2deg(theta)
  return lat.astype(np.float32), lon.astype(np.float32)


def _spherical(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(azimuth phi, colatitude theta) in radians, in the dtype of lat/lon."""
  return np.deg2rad(lon), np.deg2rad(90 - lat)


def _cartesian(phi: np.ndarray, theta: np.ndarray) -> np.ndarray:
  return np.stack(
      [np.cos(phi) * np.sin(theta), np.sin(phi) * np.sin(theta), np.cos(theta)], axis=-1
  )


# Widths of the structural features, read by the model and the estimator.
NODE_FEATURES = 3  # [sin(lat), cos(lon), sin(lon)]
EDGE_FEATURES = 4  # [length, dx, dy, dz] in the receiver's frame


def node_features(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
  """[N, 3] float32 node features [sin(lat), cos(lon), sin(lon)] of float32 lat/lon [N]."""
  phi, theta = _spherical(np.asarray(lat, np.float32), np.asarray(lon, np.float32))
  return np.stack([np.cos(theta), np.cos(phi), np.sin(phi)], axis=-1).astype(np.float32)


def _rotations_to_local(phi: np.ndarray, theta: np.ndarray) -> np.ndarray:
  """[N, 3, 3] float64 rotations taking each node to lat 0, lon 0.

  Rotating about z by -phi brings the node to lon 0; rotating about y by
  (pi/2 - theta) then brings it down (or up) to the equator. Applied as
  `matrix @ position`.
  """
  angles = np.stack([-phi, -theta + np.pi / 2], axis=1)
  return transform.Rotation.from_euler("zy", angles).as_matrix()


def edge_features(
    sender_lat: np.ndarray,
    sender_lon: np.ndarray,
    receiver_lat: np.ndarray,
    receiver_lon: np.ndarray,
    senders: np.ndarray,
    receivers: np.ndarray,
    normalization: float | None = None,
) -> tuple[np.ndarray, float]:
  """Edge features [E, 4] for edges between two node sets (may be the same set).

  Args:
    sender_lat, sender_lon: [num_senders] float32 degrees.
    receiver_lat, receiver_lon: [num_receivers] float32 degrees.
    senders: [E] indices into the sender nodes.
    receivers: [E] indices into the receiver nodes.
    normalization: divisor of all four features; None: the longest edge.

  Returns:
    features: [E, 4] float32 [length, dx, dy, dz] / normalization.
    normalization: the divisor used.
  """
  s_phi, s_theta = _spherical(
      np.asarray(sender_lat, np.float32), np.asarray(sender_lon, np.float32)
  )
  r_phi, r_theta = _spherical(
      np.asarray(receiver_lat, np.float32), np.asarray(receiver_lon, np.float32)
  )
  s_pos = _cartesian(s_phi, s_theta)  # float32 [num_senders, 3]
  r_pos = _cartesian(r_phi, r_theta)
  rotations = _rotations_to_local(r_phi, r_theta)  # [num_receivers, 3, 3]

  num_edges = senders.shape[0]
  relative = np.empty((num_edges, 3), np.float64)
  for start in range(0, num_edges, _CHUNK):
    s = senders[start : start + _CHUNK]
    r = receivers[start : start + _CHUNK]
    rot = rotations[r]
    relative[start : start + _CHUNK] = np.einsum("...ji,...i->...j", rot, s_pos[s]) - np.einsum(
        "...ji,...i->...j", rot, r_pos[r]
    )
  length = np.linalg.norm(relative, axis=-1, keepdims=True)
  if normalization is None:
    normalization = float(length.max()) if num_edges else 1.0
  features = np.concatenate([length, relative], axis=-1) / normalization
  return features.astype(np.float32), float(normalization)
