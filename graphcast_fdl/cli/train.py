"""`train`: build the experiment, record its config, run its phase schedule.

The workdir is checked before anything is written: a folder holding files
but no run is refused; a run recorded with another config stops with the
fields that differ (unless --allow_config_change); a finished run says so and
is left as it is. One trainer at a time holds the workdir's lock.
"""

from __future__ import annotations

import json
import os

from absl import flags
from absl import logging

from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli import errors
from graphcast_fdl.cli import init_checkpoint
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl.train import workdir as workdir_lib
from graphcast_fdl.train.experiment import phase_settings

DISTRIBUTED = flags.DEFINE_enum(
    "distributed",
    "auto",
    ["auto", "on", "off"],
    "Call jax.distributed.initialize(): auto does so where a cluster "
    "environment (SLURM with several tasks, a multi-host TPU slice) or "
    "--coordinator_address is present.",
)
COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for hand-started multi-process runs."
)
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in all.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
XLA = flags.DEFINE_bool(
    "xla",
    False,
    "Before the first step, compile every phase's train step on abstract "
    "shapes and let the compiler's memory figures decide which phases fit "
    "this device (always on a TPU with libtpu; figures are cached on disk).",
)
ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change",
    False,
    "Continue a workdir recorded with another config (a longer schedule, a "
    "lower learning rate after a blow-up); its config.json/.txt and "
    "result.json move to history/N/ first.",
)


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
    kwargs = dict(
        coordinator_address=COORDINATOR.value,
        num_processes=NUM_PROCESSES.value,
        process_id=PROCESS_ID.value,
    )
  jax.distributed.initialize(**kwargs)


def check_fits_machine(experiment, num_visible_devices: int) -> None:
  """Device-count problems found before any data or model is built."""
  wanted = experiment.mesh.num_devices
  if wanted is not None and wanted > num_visible_devices:
    raise UsageError(
        f"mesh.num_devices={wanted} but {num_visible_devices} device(s) are "
        f"visible: use --config=fiddler:devices(n={num_visible_devices})"
    )


def check_rollouts_fit_data(experiment) -> None:
  """A rollout needs 2 input frames + k targets inside one split."""
  from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top

  for span in experiment.schedule.spans():
    data = phase_settings(experiment, span.phase).data
    available = data_lib.max_rollout_steps(data, experiment.task, data.train_split)
    if span.phase.rollout_steps > available:
      raise UsageError(
          f"schedule.phases[{span.index}].rollout_steps="
          f"{span.phase.rollout_steps} is longer than split "
          f"{data.train_split!r} of {data.source!r} allows ({available})"
      )


def check_eval_data(experiment) -> None:
  """A NaN/Inf in the evaluation windows, found before the first step."""
  if not experiment.eval.every_steps:
    return
  from graphcast_fdl.data import preflight  # pylint: disable=g-import-not-at-top

  try:
    preflight.check_eval_split(
        experiment.data, experiment.task, experiment.eval.rollout_steps, experiment.eval.num_batches
    )
  except preflight.validation.DataError as e:
    raise UsageError(str(e)) from e


def report_estimate(experiment, device, workdir: str | None, xla: bool = False) -> dict | None:
  """Logs the estimate for the devices this run sees; warns of phases that
  will not fit, by the compiler's figures on a TPU (libtpu present) or with
  `xla`, else by the analytic model. Writes `estimate.json` into the
  workdir (process 0)."""
  from graphcast_fdl.analysis import estimator  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import hardware  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import xla_cost  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.train import progress  # pylint: disable=g-import-not-at-top

  key = hardware.detect(device.platform, getattr(device, "device_kind", ""))
  if key is None:
    logging.info(
        "No estimate: device kind %r is not in the hardware table",
        getattr(device, "device_kind", ""),
    )
    return None
  # On a TPU (libtpu present), XLA:TPU compiles each phase first and decides;
  # `xla` does the same with this machine's compiler on any backend.
  on_tpu = device.platform == "tpu" and xla_cost.libtpu_version() is not None
  est = estimator.estimate(
      experiment,
      key,
      use_xla=on_tpu or xla,
      progress=lambda line: logging.info("%s", line.strip()),
  )
  logging.info(
      "Estimate on %d x %s: %s of training steps (excludes %s; %s)",
      est.num_devices,
      est.hardware,
      progress.format_seconds(est.total_duration_seconds),
      progress.EXCLUDED,
      est.efficiency_source,
  )
  for phase in est.phases:
    if not phase.fits:
      logging.warning(
          "Phase %s needs about %.1f GiB per device, more than the %.1f GiB "
          "of a %s (%s): it may run out of memory (try "
          "--config=fiddler:fit_memory())",
          phase.name,
          est.memory_bytes_per_device / 2**30 - phase.headroom_bytes / 2**30,
          est.memory_bytes_per_device / 2**30,
          est.hardware,
          phase.source,
      )
  if workdir is not None:
    with open(os.path.join(workdir, "estimate.json"), "w") as f:
      f.write(est.to_json() + "\n")
  return est.to_dict()


def check_workdir(cfg, workdir: str, allow_config_change: bool) -> str:
  """ "new", "resume", "finished" or "changed"; refuses, before writing
  anything, a foreign folder or an unasked-for change of config."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UsageError(f"--workdir={workdir} is a file, not a folder")
  if workdir_lib.is_foreign(workdir):
    raise UsageError(
        f"--workdir={workdir} is not empty and holds no run (no config.json):"
        " nothing there is overwritten; choose a new or empty folder"
    )
  old = workdir_lib.recorded_config(workdir)
  if old is None:
    return "new"
  new = config_flags.flattened(cfg)
  if old != new:
    if allow_config_change or not workdir_lib.has_checkpoints(workdir):
      return "changed"  # Asked for, or nothing trained yet to disagree with.
    raise UsageError(
        f"--workdir={workdir} holds a run with another config ("
        f"{workdir_lib.config_diff(old, new)}); nothing was written. Start a "
        "new run with another --workdir (to fine-tune from this one: "
        f"--config=fiddler:finetune_from(checkpoint='{workdir}')), or pass "
        "--allow_config_change to continue this run with the new config"
    )
  return "finished" if workdir_lib.finished_step(workdir) is not None else ("resume")


def _finished_message(workdir: str) -> str:
  return (
      f"{workdir} holds a finished run (global step "
      f"{workdir_lib.finished_step(workdir)}, see result.json): nothing to "
      "do, nothing changed. Score it with: evaluate --config=config_file:"
      f"{workdir}/config.json --checkpoint={workdir}; to train on, lengthen "
      "the schedule and pass --allow_config_change"
  )


def main(argv: list[str]) -> None:
  del argv
  errors.exit_on_failure(_main)


def _main() -> None:
  cfg = config_flags.experiment_config()
  experiment = config_flags.build_experiment(cfg)
  workdir = config_flags.require_workdir()
  init_checkpoint.check(experiment)  # Weights for this model and task only.
  state = check_workdir(cfg, workdir, ALLOW_CONFIG_CHANGE.value)
  if state == "finished":
    print(_finished_message(workdir))
    return

  init_distributed()
  import jax  # pylint: disable=g-import-not-at-top

  check_fits_machine(experiment, jax.device_count())
  with workdir_lib.locked(workdir, jax.process_index()):
    from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top

    data_lib.prepare(experiment.data, experiment.task)
    for phase in experiment.schedule.phases:
      if phase.data is not None:
        data_lib.prepare(phase.data, experiment.task)
    check_rollouts_fit_data(experiment)
    check_eval_data(experiment)

    if jax.process_index() == 0:
      if state == "changed":
        logging.warning(
            "Config changed: the previous record moved to %s", workdir_lib.archive_record(workdir)
        )
      if state != "resume":
        config_flags.write_config_files(cfg, workdir)
        logging.info("Wrote %s/config.json and config.txt", workdir)
    est = report_estimate(
        experiment, jax.devices()[0], workdir if jax.process_index() == 0 else None, XLA.value
    )

    from graphcast_fdl.train import trainer  # pylint: disable=g-import-not-at-top

    result = trainer.Trainer(
        experiment, workdir, step_seconds=est and [p["step_seconds"] for p in est["phases"]]
    ).run()
    text = json.dumps(result, indent=2, default=str)
    if jax.process_index() == 0:
      # Its presence marks the run finished (a sweep skips such members).
      with open(os.path.join(workdir, "result.json"), "w") as f:
        f.write(text + "\n")
    print(text)
