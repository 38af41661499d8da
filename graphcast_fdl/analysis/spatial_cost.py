"""What splitting each example over a space axis costs and saves per device.

With `MeshConfig.spatial` = K the K devices of a group share one example
(`model.spatial`): each holds a latitude band of the grid and of the mesh and
every edge into them (`graph.partition`), and before each message step swaps
the sender rows the others need (its halo) in one `all_to_all`. Per device:
  * memory: node and edge activations are those of one part (padded to the
    largest, plus the halo rows of the extended sender tables); parameters,
    optimiser state and gradients stay whole (replicated); the example's
    arrays are split by band;
  * traffic: per exchange (K - 1) halo blocks of [rows, batch, latent]
    leave each device: the grid rows once in the encoder, the mesh rows once
    per processor step and once for the decoder, again in the backward pass
    (the transpose of an all_to_all) and once more for every recomputation
    of the stage under the remat policy.
Sizes come from the real partition of the real graph (built once, or read
from the graph cache), not from a formula: the halo depends on how the
latitude bands of grid and mesh line up. They are cached on disk
(`$GRAPHCAST_FDL_CACHE/partition`) since the 0.25 deg graph takes seconds
to load and partition.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import tempfile

from graphcast_fdl.analysis import sizes as sizes_lib
from graphcast_fdl.model import spatial as spatial_lib
from graphcast_fdl.model.config import ModelConfig, RematConfig

CACHE_VERSION = 1
STAGES = ("encoder", "processor", "decoder")


@dataclasses.dataclass(frozen=True)
class PartSizes(sizes_lib.GraphSizes):
  """One device's part of the graphs (`graph.partition`), padded as run.

  The edge counts are edges per part; `grid_part` the grid rows of a part
  (bands of whole latitude rows, padded; `grid_lat`/`grid_lon` keep the
  whole grid's shape); `*_halo` the rows of each of the K halo blocks an
  edge set's sender table is extended by.
  """

  num_parts: int = 1
  grid_part: int = 0
  grid2mesh_halo: int = 0
  mesh_halo: int = 0
  mesh2grid_halo: int = 0
  cut_fraction: float = 0.0

  @property
  def grid_nodes(self) -> int:
    return self.grid_part

  def sender_rows(self, edge_set: str) -> int:
    """Own rows plus the K received halo blocks (`halo.extend`)."""
    halo = {
        "grid2mesh": self.grid2mesh_halo,
        "mesh": self.mesh_halo,
        "mesh2grid": self.mesh2grid_halo,
    }[edge_set]
    return super().sender_rows(edge_set) + self.num_parts * halo


@dataclasses.dataclass(frozen=True)
class _GraphSpec:
  """The fields of a `ModelConfig` that define its graphs (and so the
  partition); the graph cache reads them (`graph.graphs_for_model`)."""

  resolution: float
  include_poles: bool
  mesh_size: int
  radius_query_fraction_edge_length: float
  mesh2grid_edge_normalization_factor: float | None

  @classmethod
  def of(cls, model: ModelConfig) -> "_GraphSpec":
    return cls(**{f.name: getattr(model, f.name) for f in dataclasses.fields(cls)})


@functools.cache
def _partition_digest() -> str:
  """Digest of the code that makes the parts: a change re-measures them."""
  from graphcast_fdl.graph import partition as partition_lib  # pylint: disable=g-import-not-at-top

  source = pathlib.Path(partition_lib.__file__).read_bytes()
  return hashlib.sha256(source).hexdigest()[:16]


def _cache_path(model: _GraphSpec, num_parts: int) -> pathlib.Path:
  root = os.environ.get("GRAPHCAST_FDL_CACHE") or (pathlib.Path.home() / ".cache" / "graphcast_fdl")
  inputs = json.dumps([CACHE_VERSION, dataclasses.astuple(model), num_parts, _partition_digest()])
  name = (
      f"parts_{model.resolution}deg_mesh{model.mesh_size}_k{num_parts}_"
      f"{hashlib.sha256(inputs.encode()).hexdigest()[:16]}.json"
  )
  return pathlib.Path(root).expanduser() / "partition" / name


def _measure(model: _GraphSpec, num_parts: int) -> dict:
  """Partitions the model's graphs (built or read from the graph cache)."""
  from graphcast_fdl import graph as graph_lib  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.graph import partition as partition_lib  # pylint: disable=g-import-not-at-top

  parts = partition_lib.partition_graphs(graph_lib.graphs_for_model(model), num_parts)
  return dict(
      grid_part=parts.grid.size,
      mesh_nodes=parts.mesh.size,
      grid2mesh_edges=parts.grid2mesh.edges.shape[1],
      mesh_edges=parts.mesh_edges.edges.shape[1],
      mesh2grid_edges=parts.mesh2grid.edges.shape[1],
      grid2mesh_halo=parts.grid2mesh.halo_size,
      mesh_halo=parts.mesh_edges.halo_size,
      mesh2grid_halo=parts.mesh2grid.halo_size,
      cut_fraction=parts.cut_fraction,
  )


@functools.cache
def _part_figures(model: _GraphSpec, num_parts: int) -> dict:
  path = _cache_path(model, num_parts)
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    pass
  figures = _measure(model, num_parts)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(figures, f)
  os.replace(tmp, path)
  return figures


def part_sizes(model: ModelConfig, num_parts: int) -> sizes_lib.GraphSizes:
  """One device's graph sizes when `num_parts` devices share an example;
  the whole graph's closed-form sizes for 1 (nothing is built then)."""
  whole = sizes_lib.graph_sizes(model)
  if num_parts == 1:
    return whole
  return PartSizes(
      grid_lat=whole.grid_lat,
      grid_lon=whole.grid_lon,
      num_parts=num_parts,
      **_part_figures(_GraphSpec.of(model), num_parts),
  )


def part_settings(
    model: ModelConfig, remat: RematConfig, num_parts: int
) -> tuple[ModelConfig, RematConfig]:
  """The model and remat policy one device runs: edge and grid-node blocks
  cut `num_parts` ways, as `model.spatial.SpatialPredictor` runs them."""
  split = spatial_lib.part_blocks(dataclasses.replace(model, remat=remat), num_parts)
  return split, split.remat


def exchange_rows(parts: sizes_lib.GraphSizes, gnn_msg_steps: int) -> dict:
  """Node rows one device sends per stage in one forward pass of one example
  (as `model.spatial.exchanged_rows`, split by stage)."""
  if not isinstance(parts, PartSizes):
    return dict.fromkeys(STAGES, 0)
  blocks = parts.num_parts - 1  # the block a device "sends" itself stays
  return {
      "encoder": blocks * parts.grid2mesh_halo,
      "processor": blocks * gnn_msg_steps * parts.mesh_halo,
      "decoder": blocks * parts.mesh2grid_halo,
  }


def exchange_passes(remat: RematConfig, rollout_steps: int) -> dict:
  """All_to_all passes per stage and rollout step: forward, backward (its
  transpose), and one per recomputation of the forward that encloses the
  exchange (rollout step or segment, encoder/decoder, processor group)."""
  outer = 1.0 if remat.rollout_step and rollout_steps > 1 else 0.0
  k = remat.rollout_segment
  if 1 < k < rollout_steps:
    outer += (rollout_steps // k) * k / rollout_steps
  passes = 2 + outer
  return {
      "encoder": passes + int(remat.encoder_decoder),
      "processor": passes + int(bool(remat.processor_every_k)),
      "decoder": passes + int(remat.encoder_decoder),
  }


@dataclasses.dataclass(frozen=True)
class Exchange:
  """Halo traffic of one training step on one device, by stage."""

  bytes_per_stage: dict
  seconds_per_stage: dict

  @property
  def bytes(self) -> float:
    return sum(self.bytes_per_stage.values())

  @property
  def seconds(self) -> float:
    return sum(self.seconds_per_stage.values())


def exchange(
    model: ModelConfig,
    parts: sizes_lib.GraphSizes,
    *,
    remat: RematConfig,
    precision_bytes: int,
    rollout_steps: int,
    batch: int,
    bandwidth: float,
) -> Exchange:
  """Bytes each device sends per step and the time at `bandwidth` (bytes/s
  one way per chip; the exchange is not assumed to overlap compute)."""
  rows = exchange_rows(parts, model.gnn_msg_steps)
  passes = exchange_passes(remat, rollout_steps)
  row_bytes = batch * model.latent_size * precision_bytes
  sent = {s: rollout_steps * passes[s] * rows[s] * row_bytes for s in STAGES}
  seconds = {s: (sent[s] / bandwidth if bandwidth else 0.0) for s in STAGES}
  return Exchange(bytes_per_stage=sent, seconds_per_stage=seconds)
