"""Runs one training process for the multi-device / kill-and-resume tests.

Usage: python tests/train_worker.py '<json spec>' with keys
  kind: "tiny" (stand-in model and data) or "demo" (the real model and data,
    see test_trainer_real.py's small experiment)
  workdir, devices (CPU devices in this process), spatial (devices sharing
    each example), phase_spatial ({phase: its split}, demo only),
  out: .npz of final params, written by process 0; each process writes
    `<out>.<process>.json`: the examples it read per batch (tiny only),
  delay (seconds per batch, tiny only),
  num_processes, process_id, port (for jax.distributed; 1 process: omitted),
  sigterm_at (demo only): the process sends itself SIGTERM with this global
    step's batch (it saves after that step and exits 143),
  break_checkpoints_at (tiny only): at this step's batch, a file takes the
    place of checkpoints/ so that the next save fails.
The run goes through the commands' failure guard (one line, exit 1).
"""

import dataclasses
import json
import os
import signal
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _BreakingData(step, workdir, **kwargs):  # pylint: disable=invalid-name
  """TinyData that swaps checkpoints/ for a file at global step `step`."""
  import train_fakes  # pylint: disable=g-import-not-at-top

  class Breaking(train_fakes.TinyData):

    def train_batches(self, *args, **kw):
      for batch in super().train_batches(*args, **kw):
        directory = os.path.join(workdir, "checkpoints")
        if self.yielded[-1] == step and os.path.isdir(directory):
          os.rename(directory, directory + ".moved")
          open(directory, "w").close()
        yield batch

  return Breaking(**kwargs)


class _SignalAt:
  """A data module whose training batch of global step `step` comes with a
  SIGTERM to this process (a preemption at a known step)."""

  def __init__(self, data, step):
    self._data, self._step = data, step

  def __getattr__(self, name):
    return getattr(self._data, name)

  def train_batches(self, data, task, rollout_steps, start_step, **kwargs):
    batches = self._data.train_batches(data, task, rollout_steps, start_step, **kwargs)
    for step, batch in enumerate(batches, start_step):
      if step == self._step:
        os.kill(os.getpid(), signal.SIGTERM)
      yield batch


def main(spec):
  from absl import logging  # pylint: disable=g-import-not-at-top

  logging.set_verbosity(logging.INFO)
  jax.config.update("jax_num_cpu_devices", spec.get("devices", 1))
  if spec.get("cache_dir"):
    jax.config.update("jax_compilation_cache_dir", spec["cache_dir"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  num_processes = spec.get("num_processes", 1)
  if num_processes > 1:
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{spec['port']}",
        num_processes=num_processes,
        process_id=spec["process_id"],
    )
  from graphcast_fdl.train import config  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  total_devices = spec.get("devices", 1) * num_processes
  if spec["kind"] == "tiny":
    import train_fakes  # pylint: disable=g-import-not-at-top

    data = train_fakes.TinyData(delay=spec.get("delay", 0.0))
    if spec.get("break_checkpoints_at") is not None:
      data = _BreakingData(
          spec["break_checkpoints_at"], spec["workdir"], delay=spec.get("delay", 0.0)
      )
    experiment = train_fakes.tiny_experiment(num_devices=total_devices)
    mesh = config.MeshConfig(num_devices=total_devices, spatial=spec.get("spatial", 1))
    trainer = trainer_lib.Trainer(
        dataclasses.replace(experiment, mesh=mesh),
        spec["workdir"],
        predictor_factory=train_fakes.tiny_predictor,
        data_module=data,
    )
  else:
    import real_experiment  # pylint: disable=g-import-not-at-top
    from graphcast_fdl import data as data_lib  # pylint: disable=g-import-not-at-top

    data = data_lib
    if spec.get("sigterm_at") is not None:
      data = _SignalAt(data, spec["sigterm_at"])
    trainer = trainer_lib.Trainer(
        real_experiment.small_experiment(
            spec["data_dir"],
            total_devices,
            spatial=spec.get("spatial", 1),
            phase_spatial=spec.get("phase_spatial"),
        ),
        spec["workdir"],
        data_module=data,
    )
  from absl import flags  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli import errors  # pylint: disable=g-import-not-at-top

  flags.FLAGS(["train_worker"])
  result = errors.exit_on_failure(trainer.run)
  read = data.examples_read if spec["kind"] == "tiny" else None
  with open(f"{spec['out']}.{jax.process_index()}.json", "w", encoding="utf-8") as f:
    json.dump({"examples_read": read}, f)
  if jax.process_index() == 0:
    from graphcast_fdl.train import metrics  # pylint: disable=g-import-not-at-top

    flat = {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(metrics.to_host(trainer.state.params))
    }
    np.savez(spec["out"], **flat)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
  main(json.loads(sys.argv[1]))
