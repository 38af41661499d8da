"""Runs one training process for the multi-device / kill-and-resume tests.

Usage: python tests/train_worker.py '<json spec>' with keys
  kind: "tiny" (stand-in model and data) or "demo" (the real model and data,
    see test_trainer_real.py's small experiment)
  workdir, devices (CPU devices in this process), spatial (devices sharing
    each example, demo only), out (.npz of final params,
    written by process 0), delay (seconds per training batch; demo: from
    global step delay_from on),
  num_processes, process_id, port (for jax.distributed; 1 process: omitted),
  break_checkpoints_at (tiny only): at this step's batch, a file takes the
    place of checkpoints/ so that the next save fails.
The run goes through the commands' failure guard (one line, exit 1).
"""

import json
import os
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


class _SlowData:
  """graphcast_fdl.data (its Grain pipeline) with `delay` seconds added to
  each training batch from step `delay_from`, to leave time for a kill there."""

  def __init__(self, delay, delay_from):
    from graphcast_fdl import data  # pylint: disable=g-import-not-at-top

    self._data, self._delay, self._from = data, delay, delay_from

  def __getattr__(self, name):
    return getattr(self._data, name)

  def train_batches(self, *args, **kwargs):
    iterator, delay, first = self._data.train_batches(*args, **kwargs), self._delay, self._from

    class Slow:

      def __iter__(self):
        return self

      def __next__(self):
        if iterator.step >= first:
          time.sleep(delay)
        return next(iterator)

      def __getattr__(self, name):  # get_state, set_state, close, ...
        return getattr(iterator, name)

    return Slow()


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
  from graphcast_fdl.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  total_devices = spec.get("devices", 1) * num_processes
  if spec["kind"] == "tiny":
    import train_fakes  # pylint: disable=g-import-not-at-top

    data = train_fakes.TinyData(delay=spec.get("delay", 0.0))
    if spec.get("break_checkpoints_at") is not None:
      data = _BreakingData(
          spec["break_checkpoints_at"], spec["workdir"], delay=spec.get("delay", 0.0)
      )
    trainer = trainer_lib.Trainer(
        train_fakes.tiny_experiment(num_devices=total_devices),
        spec["workdir"],
        predictor_factory=train_fakes.TinyPredictor,
        data_module=data,
    )
  else:
    import real_experiment  # pylint: disable=g-import-not-at-top

    trainer = trainer_lib.Trainer(
        real_experiment.small_experiment(
            spec["data_dir"], total_devices, spatial=spec.get("spatial", 1)
        ),
        spec["workdir"],
        data_module=_SlowData(spec["delay"], spec.get("delay_from", 0))
        if spec.get("delay")
        else None,
    )
  from absl import flags  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli import errors  # pylint: disable=g-import-not-at-top

  flags.FLAGS(["train_worker"])
  result = errors.exit_on_failure(trainer.run)
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
