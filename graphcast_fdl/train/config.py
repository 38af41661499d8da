"""Optimiser, device mesh, checkpoint and evaluation settings as plain data."""

from __future__ import annotations

import dataclasses


def check_range(prefix: str, config, minimums: dict, above: tuple = ()) -> None:
  """ValueError naming the first field below its minimum (None is allowed).

  Args:
    prefix: the config's place in the experiment, e.g. "checkpoint".
    config: the dataclass instance.
    minimums: {field: smallest allowed value}.
    above: fields that must be strictly greater than their minimum.
  """
  for name, low in minimums.items():
    value = getattr(config, name)
    if value is None:
      continue
    if value < low or (name in above and value == low):
      relation = ">" if name in above else ">="
      raise ValueError(f"{prefix}.{name}={value}: must be {relation} {low}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """AdamW as published: decay on weight matrices only, global-norm clipping."""

  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-8
  weight_decay: float = 0.1
  grad_clip_norm: float = 32.0

  def __post_init__(self):
    check_range(
        "optimizer",
        self,
        {"b1": 0, "b2": 0, "eps": 0, "weight_decay": 0, "grad_clip_norm": 0},
        above=("eps", "grad_clip_norm"),
    )
    for name in ("b1", "b2"):
      if getattr(self, name) >= 1:
        raise ValueError(f"optimizer.{name}={getattr(self, name)}: must be < 1")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """The `jax.sharding.Mesh` training runs on.

  Attributes:
    num_devices: devices across all hosts (None: every visible device), data
      x spatial of them.
    data_axis: mesh axis the global batch is split over.
    shard_params: shard parameters and optimiser state over the data axis
      (FSDP-style) instead of replicating them.
    spatial: devices that share one example (`graphcast_fdl.model.spatial`),
      along a second mesh axis; 1: none. Needed when one example does not
      fit one device (0.25 deg, long rollouts); costs a halo exchange per
      message step over the interconnect.
    space_axis: name of that axis.
  """

  num_devices: int | None = None
  data_axis: str = "data"
  shard_params: bool = False
  spatial: int = 1
  space_axis: str = "space"

  def __post_init__(self):
    if isinstance(self.spatial, bool) or not isinstance(self.spatial, int) or self.spatial < 1:
      raise ValueError(f"mesh.spatial={self.spatial!r}: must be a whole " "number >= 1")
    check_range("mesh", self, {"num_devices": 1})


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """Orbax checkpoints: every `every_steps`, at each phase end and on SIGTERM.

  Attributes:
    every_steps: periodic cadence (0: only at phase ends and on SIGTERM).
    max_to_keep: newest checkpoints kept (at least 1).
  """

  every_steps: int = 1000
  max_to_keep: int = 3

  def __post_init__(self):
    check_range("checkpoint", self, {"every_steps": 0, "max_to_keep": 1})


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Periodic evaluation on the held-out split.

  Attributes:
    every_steps: cadence (0: only the final evaluation).
    num_batches: held-out batches per evaluation (at least 1).
    rollout_steps: autoregressive steps scored.
  """

  every_steps: int = 1000
  num_batches: int = 4
  rollout_steps: int = 1

  def __post_init__(self):
    check_range("eval", self, {"every_steps": 0, "num_batches": 1, "rollout_steps": 1})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Guards and diagnostics of the training loop.

  Attributes:
    max_nonfinite_in_a_row: a step with a NaN/Inf loss or gradient is skipped
      (parameters and optimiser state unchanged) and counted; this many in a
      row stop the run with an error, keeping the last good checkpoint. A few
      isolated skips are normal with bfloat16; a streak means divergence.
    profile_steps: record a JAX profiler trace (TensorBoard "profile" tab in
      the workdir) over this many steps; 0 turns profiling off.
    profile_first_step: global step at which the trace starts.
    compilation_cache_dir: JAX persistent compilation cache; a relative path
      is under the workdir. A restarted (preempted) run then skips compiling
      each phase again. None: off.
  """

  max_nonfinite_in_a_row: int = 10
  profile_steps: int = 0
  profile_first_step: int = 10
  compilation_cache_dir: str | None = None

  def __post_init__(self):
    check_range(
        "train", self, {"max_nonfinite_in_a_row": 1, "profile_steps": 0, "profile_first_step": 0}
    )
