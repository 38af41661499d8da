"""`train`: build the experiment, record its config, run its phase schedule."""

from __future__ import annotations

import json
import os

from absl import flags
from absl import logging

from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError


DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "Call jax.distributed.initialize(): auto does so where a cluster "
    "environment (SLURM with several tasks, a multi-host TPU slice) or "
    "--coordinator_address is present.")
COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for hand-started multi-process runs.")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in all.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def _in_cluster() -> bool:
  env = os.environ
  slurm_tasks = int(env.get("SLURM_NTASKS", "1") or 1)
  tpu_hosts = env.get("TPU_WORKER_HOSTNAMES", "")
  return slurm_tasks > 1 or "," in tpu_hosts or bool(env.get("JAX_COORDINATOR_ADDRESS"))


def init_distributed() -> None:
  """Joins the other processes of a multi-host run before JAX sees devices."""
  wanted = DISTRIBUTED.value
  if wanted == "off" or (wanted == "auto" and not COORDINATOR.value and not _in_cluster()):
    return
  import jax  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if COORDINATOR.value:
    kwargs = dict(coordinator_address=COORDINATOR.value,
                  num_processes=NUM_PROCESSES.value, process_id=PROCESS_ID.value)
  jax.distributed.initialize(**kwargs)


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


def report_estimate(experiment, device, workdir: str | None) -> dict | None:
  """Logs the estimate for the devices this run sees; warns of phases that
  will not fit. Writes `estimate.json` into the workdir (process 0)."""
  from graphcast_fdl.analysis import estimator  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import hardware  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import xla_cost  # pylint: disable=g-import-not-at-top
  key = hardware.detect(device.platform, getattr(device, "device_kind", ""))
  if key is None:
    logging.info("No estimate: device kind %r is not in the hardware table",
                 getattr(device, "device_kind", ""))
    return None
  # On a TPU (libtpu present), XLA:TPU compiles each phase first and decides.
  est = estimator.estimate(experiment, key, use_xla=(
      device.platform == "tpu" and xla_cost.libtpu_version() is not None))
  logging.info("Estimate on %d x %s: %.3g h in all (%s)", est.num_devices,
               est.hardware, est.total_duration_seconds / 3600,
               est.efficiency_source)
  for phase in est.phases:
    if not phase.fits:
      logging.warning(
          "Phase %s needs about %.1f GiB per device, more than the %.1f GiB "
          "of a %s: it may run out of memory (try "
          "--config=fiddler:fit_memory())", phase.name,
          est.memory_bytes_per_device / 2**30 - phase.headroom_bytes / 2**30,
          est.memory_bytes_per_device / 2**30, est.hardware)
  if workdir is not None:
    with open(os.path.join(workdir, "estimate.json"), "w") as f:
      f.write(est.to_json() + "\n")
  return est.to_dict()


def main(argv: list[str]) -> None:
  del argv
  cfg = config_flags.experiment_config()
  experiment = config_flags.build_experiment(cfg)
  workdir = config_flags.require_workdir()

  init_distributed()
  import jax  # pylint: disable=g-import-not-at-top
  check_fits_machine(experiment, jax.device_count())
  config_flags.write_config_files(cfg, workdir)
  logging.info("Wrote %s/config.json and config.txt", workdir)
  report_estimate(experiment, jax.devices()[0],
                  workdir if jax.process_index() == 0 else None)

  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top
  data_lib.prepare(experiment.data, experiment.task)
  for phase in experiment.schedule.phases:
    if phase.data is not None:
      data_lib.prepare(phase.data, experiment.task)
  check_rollouts_fit_data(experiment)

  from graphcast_fdl.train import trainer  # pylint: disable=g-import-not-at-top
  result = trainer.Trainer(experiment, workdir).run()
  text = json.dumps(result, indent=2, default=str)
  if jax.process_index() == 0:
    # Its presence marks the run finished (a sweep skips such members).
    with open(os.path.join(workdir, "result.json"), "w") as f:
      f.write(text + "\n")
  print(text)
