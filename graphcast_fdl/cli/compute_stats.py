r"""`compute_stats`: normalisation statistics of a data split, in one pass.

  graphcast_fdl compute_stats --config=config:demo --output_dir=/tmp/stats

Streams over the experiment's training split (or --split) with bounded
memory and writes mean_by_level.nc, stddev_by_level.nc and
diffs_stddev_by_level.nc in the published layout, at every stored level.
"""

from __future__ import annotations

from absl import flags
from absl import logging

from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError

OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the three .nc files.")
SPLIT = flags.DEFINE_string("split", None, "Split to summarise (default: data.train_split).")
STRIDE = flags.DEFINE_integer("stride", 1, "Use every n-th time (long records).")
MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Stop after this many times.")


def main(argv: list[str]) -> None:
  del argv
  if not OUTPUT_DIR.value:
    raise UsageError("--output_dir is required")
  if STRIDE.value < 1:
    raise UsageError(f"--stride={STRIDE.value}: must be >= 1")
  from graphcast_fdl import data  # pylint: disable=g-import-not-at-top

  experiment = config_flags.build_experiment()
  split = SPLIT.value or experiment.data.train_split
  try:
    data.prepare(experiment.data, experiment.task)
    frames = data.split_frames(experiment.data, experiment.task, split)
    stats = data.compute_stats(frames, stride=STRIDE.value, max_frames=MAX_FRAMES.value)
  except data.DataError as e:
    raise UsageError(str(e)) from e
  stats.save(OUTPUT_DIR.value)
  logging.info("wrote statistics of %d frames of %r to %s", len(frames), split, OUTPUT_DIR.value)
