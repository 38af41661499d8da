r"""`predict`: roll a published-format checkpoint out on netCDF inputs.

  graphcast_fdl predict --checkpoint=params.npz \
      --stats_dir=stats/ --inputs=inputs.nc --forcings=forcings.nc \
      --targets_template=targets.nc --output=predictions.nc

As the published code: as many 6-hour steps as the template has times; the
output has the template's variables, dims and coords.
"""

from __future__ import annotations

import json

from absl import flags

from graphcast_fdl.cli.errors import UsageError

CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Published-format .npz checkpoint.")
STATS_DIR = flags.DEFINE_string(
    "stats_dir",
    None,
    "Folder with mean_by_level.nc, stddev_by_level.nc and " "diffs_stddev_by_level.nc.",
)
INPUTS = flags.DEFINE_string("inputs", None, "Inputs netCDF (2 frames).")
FORCINGS = flags.DEFINE_string("forcings", None, "Forcings netCDF at the target times.")
TARGETS_TEMPLATE = flags.DEFINE_string(
    "targets_template", None, "Targets netCDF giving variables, dims, times."
)
OUTPUT = flags.DEFINE_string("output", None, "Predictions netCDF to write.")
PRECISION = flags.DEFINE_enum(
    "precision",
    "bfloat16",
    ["bfloat16", "float32"],
    "Compute dtype; the published model runs in bfloat16.",
)


def main(argv: list[str]) -> None:
  del argv
  for flag in (CHECKPOINT, STATS_DIR, INPUTS, FORCINGS, TARGETS_TEMPLATE, OUTPUT):
    if not flag.value:
      raise UsageError(f"--{flag.name} is required")
  from graphcast_fdl.checkpoints import npz_format  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.evaluation import inference  # pylint: disable=g-import-not-at-top

  try:
    predictions = inference.predict_to_file(
        CHECKPOINT.value,
        STATS_DIR.value,
        INPUTS.value,
        FORCINGS.value,
        TARGETS_TEMPLATE.value,
        OUTPUT.value,
        precision=PRECISION.value,
    )
  except (FileNotFoundError, ValueError, KeyError, npz_format.CheckpointError) as e:
    raise UsageError(str(e).strip("'\"").splitlines()[0]) from e
  print(
      json.dumps(
          {
              "output": OUTPUT.value,
              "variables": sorted(predictions.data_vars),
              "steps": predictions.sizes.get("time"),
          }
      )
  )
