r"""`forecast`: one forecast from one initial time, as a file and maps.

  graphcast_fdl forecast --config=config:demo \
      --checkpoint=/tmp/demo --init_time=2020-05-01T00 --lead_time=5d \
      --output_dir=/tmp/demo/forecast

The initial time must be a frame of the split (with the frames before it
the model reads); lead times may run past the end of the data.
"""

from __future__ import annotations

import json

from absl import flags

from graphcast_fdl.cli import eval_flags
from graphcast_fdl.cli.errors import UsageError

INIT_TIME = flags.DEFINE_string(
    "init_time", None, "Initial time (the last input frame), e.g. 2020-05-01T00."
)
MAP_PANELS = flags.DEFINE_integer("map_panels", 3, "Lead times drawn per map.")


def main(argv: list[str]) -> None:
  del argv
  if not INIT_TIME.value:
    raise UsageError("--init_time is required, e.g. --init_time=2020-05-01T00")
  setup = eval_flags.setup()
  lead_steps = eval_flags.lead_steps()
  output_dir = eval_flags.output_dir("forecast")

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.evaluation import forecast  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.evaluation import windows  # pylint: disable=g-import-not-at-top

  try:
    index = windows.index_of(setup.frames, INIT_TIME.value)
    batch, template, valid = windows.make_examples(setup.frames, setup.task, [index], lead_steps)
  except (windows.WindowError, ValueError) as e:
    raise UsageError(f"--init_time={INIT_TIME.value} on split {setup.split!r}: {e}") from e
  rollout_fn = jax.jit(setup.predictor.rollout, static_argnums=3)
  predictions = forecast.rollout(
      rollout_fn, setup.params, setup.task, batch, lead_steps, eval_flags.CHUNK_STEPS.value
  )
  ds = forecast.to_dataset(
      predictions, template, valid, np.asarray([setup.frames.datetimes[index]])
  )
  ds.attrs.update(checkpoint=setup.checkpoint, description=setup.description)
  files = forecast.write(ds, output_dir, eval_flags.FORMAT.value)
  maps = forecast.plot_maps(ds, output_dir, max_panels=MAP_PANELS.value, truth=template)
  print(json.dumps({"forecast": files, "maps": maps}, indent=2))
