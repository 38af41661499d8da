"""Flags and set-up shared by `evaluate` and `forecast`.

Both commands load a checkpoint (ours or a published `.npz`), build the
predictor for the data named by `--config`, and write files to
`--output_dir`; each defines only the flags that are its own.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError

CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    None,
    "Parameters: a published GraphCast .npz file, or a workdir (or its "
    "checkpoints/ folder) of one of our runs (latest step unless --step).",
)
STEP = flags.DEFINE_integer("step", None, "Step of an Orbax checkpoint (default latest).")
LEAD_TIME = flags.DEFINE_string(
    "lead_time", "10d", "Forecast length, a multiple of 6h: e.g. 36h, 5d, 10d."
)
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where files go (default <--workdir>/evaluation or " "<--workdir>/forecast).",
)
FORMAT = flags.DEFINE_enum("format", "netcdf", ["netcdf", "zarr"], "File format of the forecasts.")
SPLIT = flags.DEFINE_string("split", None, "Data split to read (default data.eval_split).")
CHUNK_STEPS = flags.DEFINE_integer(
    "chunk_steps", 8, "Rollout steps per accelerator call; smaller uses less memory."
)


def lead_steps() -> int:
  from graphcast_fdl.evaluation import forecast  # pylint: disable=g-import-not-at-top

  try:
    return forecast.lead_time_steps(LEAD_TIME.value)
  except ValueError as e:
    raise UsageError(str(e)) from e


def output_dir(default_subdir: str) -> str:
  if OUTPUT_DIR.value:
    return OUTPUT_DIR.value
  workdir = config_flags.WORKDIR.value
  if workdir:
    return os.path.join(workdir, default_subdir)
  raise UsageError("--output_dir (or --workdir) is required for this command")


@dataclasses.dataclass
class Setup:
  """What both commands build: experiment, configs, params, predictor, frames."""

  experiment: object
  model: object
  task: object
  params: object
  predictor: object
  frames: object
  split: str
  checkpoint: str
  description: str


def predictor_for(model, task, stats, mesh_config, devices=None):
  """The predictor forecasts run with: with `mesh.spatial` > 1 each forecast
  is split over that many devices (as training split each example), for
  examples that do not fit one device."""
  from graphcast_fdl.model.predictor import Predictor  # pylint: disable=g-import-not-at-top

  spatial = mesh_config.spatial
  if spatial == 1:
    return Predictor(model, task, stats)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model.spatial import SpatialPredictor  # pylint: disable=g-import-not-at-top

  devices = list(jax.devices() if devices is None else devices)
  if len(devices) < spatial:
    raise UsageError(
        f"mesh.spatial={spatial} but {len(devices)} device(s) are visible: "
        "use --config=set:mesh.spatial=1 to forecast on one device"
    )
  mesh = jax.sharding.Mesh(np.asarray(devices[:spatial]), (mesh_config.space_axis,))
  return SpatialPredictor(model, task, stats, mesh=mesh, space_axis=mesh_config.space_axis)


def setup() -> Setup:
  """Builds the experiment, loads the checkpoint, opens the split's frames."""
  experiment = config_flags.build_experiment()
  if not CHECKPOINT.value:
    raise UsageError("--checkpoint is required: a .npz file or a run's workdir")
  lead_steps()  # A bad --lead_time fails before anything is loaded.

  # Loaded after the flags are checked, so a bad flag fails without JAX.
  from graphcast_fdl import checkpoints  # pylint: disable=g-import-not-at-top
  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top

  try:
    loaded = checkpoints.load_params(
        CHECKPOINT.value, experiment.model, experiment.task, step=STEP.value, field="--checkpoint"
    )
  except (checkpoints.CheckpointNotFound, ValueError) as e:
    raise UsageError(str(e).splitlines()[0]) from e
  data = experiment.data
  if loaded.model.resolution != data.resolution:
    raise UsageError(
        f"--checkpoint is a {loaded.model.resolution} deg model but data.resolution="
        f"{data.resolution}: use --config=fiddler:resolution(degrees=...)"
    )
  split = SPLIT.value or data.eval_split
  try:
    data_lib.prepare(data, loaded.task)
    frames = data_lib.split_frames(data, loaded.task, split)
    stats = data_lib.normalization_stats(data, loaded.task, experiment.stats_dir)
  except data_lib.DataError as e:
    raise UsageError(str(e)) from e
  predictor = predictor_for(loaded.model, loaded.task, stats, experiment.mesh)
  return Setup(
      experiment=experiment,
      model=loaded.model,
      task=loaded.task,
      params=loaded.params,
      predictor=predictor,
      frames=frames,
      split=split,
      checkpoint=CHECKPOINT.value,
      description=loaded.description,
  )
