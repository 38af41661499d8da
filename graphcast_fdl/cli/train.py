"""`train`: build the experiment, record its config, run its phase schedule."""

from __future__ import annotations

import json

from absl import logging

from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError


def check_fits_machine(experiment, num_visible_devices: int) -> None:
  """Device-count problems found before any data or model is built."""
  wanted = experiment.mesh.num_devices
  if wanted is not None and wanted > num_visible_devices:
    raise UsageError(
        f"mesh.num_devices={wanted} but {num_visible_devices} device(s) are "
        f"visible: use --config=fiddler:devices(n={num_visible_devices})")


def check_rollouts_fit_data(experiment) -> None:
  """A rollout needs 2 input frames + k targets inside one split."""
  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top
  for span in experiment.schedule.spans():
    data = span.phase.data or experiment.data
    available = data_lib.max_rollout_steps(data, experiment.task, data.train_split)
    if span.phase.rollout_steps > available:
      raise UsageError(
          f"schedule.phases[{span.index}].rollout_steps="
          f"{span.phase.rollout_steps} is longer than split "
          f"{data.train_split!r} of {data.source!r} allows ({available})")


def main(argv: list[str]) -> None:
  del argv
  cfg = config_flags.experiment_config()
  experiment = config_flags.build_experiment(cfg)
  workdir = config_flags.require_workdir()

  import jax  # pylint: disable=g-import-not-at-top
  jax.config.parse_flags_with_absl()
  check_fits_machine(experiment, jax.device_count())
  config_flags.write_config_files(cfg, workdir)
  logging.info("Wrote %s/config.json and config.txt", workdir)

  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top
  data_lib.prepare(experiment.data, experiment.task)
  for phase in experiment.schedule.phases:
    if phase.data is not None:
      data_lib.prepare(phase.data, experiment.task)
  check_rollouts_fit_data(experiment)

  from graphcast_fdl.train import trainer  # pylint: disable=g-import-not-at-top
  result = trainer.Trainer(experiment, workdir).run()
  print(json.dumps(result, indent=2, default=str))
