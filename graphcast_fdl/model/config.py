"""Architecture and memory knobs of the GraphCast model, as plain data."""

from __future__ import annotations

import dataclasses

PRECISIONS = ("float32", "bfloat16")
ROLLOUT_SAVES = ("window", "prediction")
# The rollout memory knobs of `RematConfig` (where a rollout's data waits,
# not what is computed), at their defaults: one list for every place that
# turns them off or checks them.
ROLLOUT_KNOBS_OFF = {
    "rollout_saves": "window",
    "offload_rollout": False,
    "host_targets": False,
    "host_inputs": False,
}


@dataclasses.dataclass(frozen=True)
class RematConfig:
  """Which activations to recompute in the backward pass instead of storing.

  These trade compute for memory; none of them changes results beyond float
  rounding. The published 0.25 deg model used the first three to fit 32 GB;
  the last two are ours, for long rollouts at 0.25 deg on 32 GB devices
  (`graphcast_fdl.analysis` prices each of them).

  Attributes:
    rollout_step: recompute each autoregressive step (checkpoint the scan body):
      a rollout keeps one input window per step instead of its activations.
    processor_every_k: checkpoint every k processor message-passing steps (0: off).
    encoder_decoder: recompute the whole grid->mesh encoder and mesh->grid decoder.
    rollout_segment: also checkpoint groups of this many rollout steps (0: off),
      so that only each group's first input window is kept, plus the windows
      of the one group being recomputed: about r/k + k windows instead of r
      for one more forward pass of those steps. Best near sqrt(rollout).
    grid_block_size: compute the grid-node MLPs (input embedding, grid updates,
      output MLP) in checkpointed blocks of this many grid nodes (None: all
      at once): their hidden activations are then never all kept, for one
      more forward pass of those MLPs.
    rollout_saves: what a recomputed rollout step (`rollout_step`) keeps for
      the backward pass: "window", its whole input window (every input frame
      plus the static channels: 466 float32 channels at 37 levels), or
      "prediction", only the frame it predicted (227 channels at 37 levels):
      the backward pass rebuilds each window from the first one and the
      last predictions, which is exact (every time-varying input channel of
      step t is a prediction or forcing of one of the input-frames-many
      steps before it). Not with `rollout_segment`.
    offload_rollout: keep those saved predictions in host memory (pinned
      host) instead of device memory, each copied back for its step of the
      backward pass. Needs rollout_saves="prediction".
    host_targets: keep the batch's targets in host memory (pinned host), each
      rollout step copying only its own targets to the device: the device
      then never holds all the targets of a long rollout (0.88 GiB per step
      at 0.25 deg / 37 levels).
    host_inputs: keep the batch's input frames in host memory (pinned host);
      the step copies them to the device once, to build its first window,
      and that copy dies there. A device-resident batch would hold them for
      the whole step, beside the window built from them (1.7 GiB at 0.25
      deg / 37 levels, the same bytes twice at a rollout's peak).
  """

  rollout_step: bool = False
  processor_every_k: int = 0
  encoder_decoder: bool = False
  rollout_segment: int = 0
  grid_block_size: int | None = None
  rollout_saves: str = "window"
  offload_rollout: bool = False
  host_targets: bool = False
  host_inputs: bool = False

  def without_rollout_knobs(self) -> RematConfig:
    """This policy with the rollout knobs off (`ROLLOUT_KNOBS_OFF`): what
    the split model runs, and what they leave unchanged (compute)."""
    return dataclasses.replace(self, **ROLLOUT_KNOBS_OFF)

  @property
  def has_rollout_knobs(self) -> bool:
    return self != self.without_rollout_knobs()

  def __post_init__(self):
    if self.processor_every_k < 0:
      raise ValueError(f"remat.processor_every_k={self.processor_every_k}: " "must be >= 0")
    if self.rollout_segment < 0:
      raise ValueError(f"remat.rollout_segment={self.rollout_segment}: " "must be >= 0")
    if self.grid_block_size is not None and self.grid_block_size < 1:
      raise ValueError(f"remat.grid_block_size={self.grid_block_size}: " "must be >= 1 or None")
    if self.rollout_saves not in ROLLOUT_SAVES:
      raise ValueError(
          f"remat.rollout_saves={self.rollout_saves!r}: must be one of {ROLLOUT_SAVES}"
      )
    if self.rollout_saves == "prediction" and self.rollout_segment:
      raise ValueError(
          f"remat.rollout_saves='prediction' with remat.rollout_segment={self.rollout_segment}:"
          " choose one (segments keep windows)"
      )
    if self.offload_rollout and self.rollout_saves != "prediction":
      raise ValueError("remat.offload_rollout=True needs remat.rollout_saves='prediction'")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """GraphCast encoder-processor-decoder on an icosahedral multi-mesh.

  Attributes:
    resolution: grid spacing in degrees of the regular lat/lon grid (0.25, 1, ...).
    include_poles: whether the grid has rows at +-90 deg (ERA5 does).
    mesh_size: finest icosahedral refinement; the multi-mesh merges levels 0..mesh_size.
    latent_size: width of every latent node/edge feature and MLP hidden layer.
    gnn_msg_steps: number of unshared processor message-passing steps (16 published).
    hidden_layers: hidden layers per MLP (1 published).
    radius_query_fraction_edge_length: grid->mesh radius as a fraction of the
      longest finest-mesh edge (0.6 published).
    mesh2grid_edge_normalization_factor: divisor of mesh->grid edge features;
      None uses the published default (the longest mesh->grid edge).
    precision: compute dtype, "bfloat16" (published) or "float32"; params stay float32.
    remat: activation recomputation policy.
    edge_block_size: compute encoder/decoder edge updates in blocks of this many
      edges to bound temporaries (None: all at once).
    grid_parts_per_edge: compute the grid nodes' share of the grid->mesh and
      mesh->grid edge MLPs' first layer per edge (inside each edge block)
      instead of once per grid node: the same forward values, without a
      float32 [n_grid, latent] share and its float32 gradient (about 2 GiB
      each at 0.25 deg); 9.7% more FLOPs by XLA:TPU at 0.25 deg, rollout 2. The gradient of
      the grid latents is then summed over their edges in the compute dtype,
      as in the published model.
  """

  resolution: float = 1.0
  include_poles: bool = True
  mesh_size: int = 5
  latent_size: int = 512
  gnn_msg_steps: int = 16
  hidden_layers: int = 1
  radius_query_fraction_edge_length: float = 0.6
  mesh2grid_edge_normalization_factor: float | None = None
  precision: str = "bfloat16"
  remat: RematConfig = dataclasses.field(default_factory=RematConfig)
  edge_block_size: int | None = None
  grid_parts_per_edge: bool = False

  def __post_init__(self):
    if self.precision not in PRECISIONS:
      raise ValueError(f"model.precision={self.precision!r}: must be one of {PRECISIONS}")
    if self.resolution <= 0:
      raise ValueError(f"model.resolution={self.resolution}: must be > 0")
    if not 0 <= self.mesh_size <= 7:
      raise ValueError(f"model.mesh_size={self.mesh_size}: must be in 0..7")
    for name in ("latent_size", "gnn_msg_steps", "hidden_layers"):
      if getattr(self, name) < 1:
        raise ValueError(f"model.{name}={getattr(self, name)}: must be >= 1")
    if self.radius_query_fraction_edge_length <= 0:
      raise ValueError(
          "model.radius_query_fraction_edge_length="
          f"{self.radius_query_fraction_edge_length}: must be > 0"
      )
    factor = self.mesh2grid_edge_normalization_factor
    if factor is not None and factor <= 0:
      raise ValueError(
          f"model.mesh2grid_edge_normalization_factor={factor}: " "must be > 0 or None"
      )
    if self.edge_block_size is not None and self.edge_block_size < 1:
      raise ValueError(f"model.edge_block_size={self.edge_block_size}: " "must be >= 1 or None")
