r"""`evaluate`: score a checkpoint on the evaluation split, with baselines.

  graphcast_fdl evaluate --config=config:demo \
      --checkpoint=/tmp/demo --lead_time=10d --output_dir=/tmp/demo/evaluation

Writes scorecard.csv/.json (RMSE both ways, bias, ACC per variable, level and
lead time for the model, persistence and climatology), rmse_<field>.png for
z500, t850, t2m, u10 and msl, and the forecasts under forecasts/.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import flags
from absl import logging

from graphcast_fdl import task as task_lib
from graphcast_fdl.cli import eval_flags
from graphcast_fdl.cli.errors import UsageError

NUM_INIT_TIMES = flags.DEFINE_integer(
    "num_init_times", 8, "Initial times spread evenly over the split (0: all)."
)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Initial times rolled out together.")
WRITE_FORECASTS = flags.DEFINE_bool(
    "write_forecasts", True, "Write the forecasts (netCDF per init time or one zarr)."
)
MODEL_NAME = flags.DEFINE_string(
    "model_name",
    None,
    "The model's label in the scorecard (default the " "checkpoint's file or folder name).",
)
CLIMATOLOGY_DIR = flags.DEFINE_string(
    "climatology_dir",
    None,
    "Cache of training-split climatologies (default "
    "<data.data_dir or ~/.cache/graphcast_fdl>/climatology).",
)
CLIM_DAYS_PER_BIN = flags.DEFINE_integer(
    "climatology_days_per_bin", 15, "Days of the year per climatology bin (1 as WB2)."
)
CLIM_WINDOW_DAYS = flags.DEFINE_integer(
    "climatology_window_days",
    61,
    "Smoothing window of the climatology in "
    "days, weights falling linearly from its centre as in WB2 (WB2: 61).",
)
CLIM_STRIDE = flags.DEFINE_integer(
    "climatology_stride", 1, "Read every n-th training frame for the climatology."
)


def _data_key(data) -> dict:
  """The DataConfig fields that fix the training split's contents."""
  skip = {"global_batch_size", "seed", "prefetch", "eval_split"}
  return {k: v for k, v in dataclasses.asdict(data).items() if k not in skip}


def _checkpoint_name(path: str) -> str:
  name = os.path.basename(os.path.normpath(path))
  if name == "checkpoints":
    name = os.path.basename(os.path.dirname(os.path.normpath(path)))
  return name[:-4] if name.endswith(".npz") else name


def main(argv: list[str]) -> None:
  del argv
  setup = eval_flags.setup()
  lead_steps = eval_flags.lead_steps()
  output_dir = eval_flags.output_dir("evaluation")
  for flag in (BATCH_SIZE, CLIM_DAYS_PER_BIN, CLIM_WINDOW_DAYS, CLIM_STRIDE):
    if flag.value < 1:
      raise UsageError(f"--{flag.name}={flag.value}: must be >= 1")
  if NUM_INIT_TIMES.value < 0:
    raise UsageError(f"--num_init_times={NUM_INIT_TIMES.value}: must be >= 0")

  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.evaluation import climatology  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.evaluation import windows  # pylint: disable=g-import-not-at-top

  data, task = setup.experiment.data, setup.task
  cache_dir = CLIMATOLOGY_DIR.value or os.path.join(
      data.data_dir or os.path.expanduser("~/.cache/graphcast_fdl"), "climatology"
  )
  train_frames = data_lib.split_frames(data, task, data.train_split)
  clim = climatology.load_or_compute(
      train_frames,
      task.target_variables,
      task.pressure_levels,
      cache_dir,
      {"data": _data_key(data)},
      days_per_bin=CLIM_DAYS_PER_BIN.value,
      window_days=CLIM_WINDOW_DAYS.value,
      stride=CLIM_STRIDE.value,
  )
  options = evaluate.EvalOptions(
      lead_steps=lead_steps,
      num_init_times=NUM_INIT_TIMES.value or None,
      batch_size=BATCH_SIZE.value,
      chunk_steps=eval_flags.CHUNK_STEPS.value,
      forecast_format=eval_flags.FORMAT.value if WRITE_FORECASTS.value else None,
      model_name=MODEL_NAME.value or _checkpoint_name(setup.checkpoint),
  )
  metadata = {
      "checkpoint": setup.checkpoint,
      "description": setup.description,
      "experiment": setup.experiment.name,
      "split": setup.split,
      "model": repr(setup.model),
      "task": repr(task),
  }
  try:
    result = evaluate.evaluate(
        setup.predictor, setup.params, task, setup.frames, clim, options, output_dir, metadata
    )
  except windows.WindowError as e:
    raise UsageError(
        f"--lead_time={eval_flags.LEAD_TIME.value} on split " f"{setup.split!r}: {e}"
    ) from e
  logging.info("Wrote %s", result["paths"]["json"])
  paths = dict(result["paths"])
  num_files = len(paths.pop("forecasts"))
  print(
      json.dumps(
          {
              "paths": paths,
              "forecast_files": num_files,
              "seconds": round(result["seconds"], 1),
              f"rmse at {task_lib.TIME_STEP_HOURS * lead_steps}h": result["summary"],
          },
          indent=2,
      )
  )
