"""Runs one training process for the multi-device / kill-and-resume tests.

Usage: python tests/train_worker.py '<json spec>' with keys
  kind: "tiny" (stand-in model and data) or "demo" (the real model and data,
    see test_trainer_real.py's small experiment)
  workdir, devices (CPU devices in this process), spatial (devices sharing
    each example), phase_spatial ({phase: its split}, demo only),
  out: .npz of final params, written by process 0; each process writes
    `<out>.<process>.json`: the examples it read per batch (tiny only),
  delay (seconds per training batch; demo: from global step delay_from on),
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
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _BreakingData(step, workdir, **kwargs):  # pylint: disable=invalid-name
  """TinyData that swaps checkpoints/ for a file at global step `step`."""
  import train_fakes  # pylint: disable=g-import-not-at-top

  class Breaking(train_fakes.TinyData):

    def _batch(self, data, rollout_steps, key, rows):
      directory = os.path.join(workdir, "checkpoints")
      if key == step and os.path.isdir(directory):
        os.rename(directory, directory + ".moved")
        open(directory, "w").close()
      return super()._batch(data, rollout_steps, key, rows)

  return Breaking(**kwargs)


class _Data:
  """graphcast_fdl.data (its Grain pipeline) with `delay` seconds added to
  each training batch from step `delay_from`, to leave time for a kill there,
  and a SIGTERM to this process with the training batch of global step
  `sigterm_at` (a preemption at a known step)."""

  def __init__(self, delay=0.0, delay_from=0, sigterm_at=None):
    from graphcast_fdl import data  # pylint: disable=g-import-not-at-top

    self._data, self._delay, self._from, self._sigterm_at = data, delay, delay_from, sigterm_at

  def __getattr__(self, name):
    return getattr(self._data, name)

  def train_batches(self, *args, **kwargs):
    iterator = self._data.train_batches(*args, **kwargs)
    delay, first, sigterm_at = self._delay, self._from, self._sigterm_at

    class Wrapped:

      def __iter__(self):
        return self

      def __next__(self):
        if delay and iterator.step >= first:
          time.sleep(delay)
        if sigterm_at is not None and iterator.step == sigterm_at:
          os.kill(os.getpid(), signal.SIGTERM)
        return next(iterator)

      def __getattr__(self, name):  # get_state, set_state, close, ...
        return getattr(iterator, name)

    return Wrapped()


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

    trainer = trainer_lib.Trainer(
        real_experiment.small_experiment(
            spec["data_dir"],
            total_devices,
            spatial=spec.get("spatial", 1),
            phase_spatial=spec.get("phase_spatial"),
        ),
        spec["workdir"],
        data_module=_Data(
            spec.get("delay", 0.0), spec.get("delay_from", 0), spec.get("sigterm_at")
        ),
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
