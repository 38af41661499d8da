"""Run by test_spatial_phases.py in a fresh process with 4 virtual CPU devices.

The tiny model (`train_fakes.TinySpatialPredictor`: latitude bands over the
space axis) trained by the real trainer:
  phases: a schedule whose phases run on (data 4), then (data 1, space 4),
    then (data 2, space 2), against (data 4) throughout;
  resume: a run on (data 2, space 2) with sharded parameters stopped by
    SIGTERM mid-phase and resumed on (data 4) and on (data 1, space 4),
    against the uninterrupted run.
Prints one JSON line: the largest relative parameter differences, the meshes
each run ended on and those the checkpoints were saved on, the shapes of each
device's part of an eval batch and the final evaluation's relative difference.
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

import train_fakes  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import config  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top


def train(experiment, workdir, data=None, runs=None):
  """(final params as numpy, mesh shape at the end); `runs`, if given, gets
  the trainer and its result appended."""
  trainer = trainer_lib.Trainer(
      experiment,
      workdir,
      predictor_factory=train_fakes.tiny_predictor,
      data_module=data or train_fakes.TinyData(),
  )
  result = trainer.run()
  if runs is not None:
    runs.append((trainer, result))
  return [np.asarray(x) for x in jax.tree.leaves(trainer.state.params)], dict(
      trainer.run_state.mesh.shape
  )


def eval_shards(trainer):
  """Shapes of each device's part of the first eval batch's arrays."""
  batch = trainer._eval_batches()[0]  # pylint: disable=protected-access
  shapes = lambda x: sorted({tuple(s.data.shape) for s in x.addressable_shards})
  return {"inputs": shapes(batch.inputs["x"]), "targets": shapes(batch.targets["x"])}


def saved_meshes(workdir):
  directory = os.path.join(workdir, "checkpoints")
  meshes = {}
  for step in sorted(os.listdir(directory), key=int):
    with open(os.path.join(directory, step, "meta", "metadata"), encoding="utf-8") as f:
      meshes[step] = json.load(f)["saved_on_mesh"]
  return meshes


def max_rel_diff(a, b) -> float:
  return float(max(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30) for x, y in zip(a, b)))


def with_spatial(experiment, **by_phase):
  phases = [
      dataclasses.replace(p, spatial=by_phase.get(p.name, p.spatial))
      for p in experiment.schedule.phases
  ]
  return dataclasses.replace(
      experiment, schedule=dataclasses.replace(experiment.schedule, phases=phases)
  )


def main():
  out = {}
  tmp = tempfile.mkdtemp()
  steps = (6, 3, 4)  # single_step, finetune (other data), rollout_2
  plain = train_fakes.tiny_experiment(num_devices=4, steps=steps, every_steps=4)
  runs = []
  reference, _ = train(plain, os.path.join(tmp, "plain"), runs=runs)
  phased = dataclasses.replace(
      with_spatial(plain, finetune=4, rollout_2=2),
      checkpoint=config.CheckpointConfig(every_steps=4, max_to_keep=10),
  )
  params, out["phases_final_mesh"] = train(phased, os.path.join(tmp, "phased"), runs=runs)
  # The final evaluation ran on the last phase's (data 2, space 2) mesh.
  out["eval_shards_data4"], out["eval_shards_space2"] = (eval_shards(t) for t, _ in runs)
  (_, plain_result), (_, phased_result) = runs
  out["eval_rel_diff"] = max(
      abs(phased_result[k] - v) / abs(v)
      for k, v in plain_result.items()
      if k.startswith(("eval", "persistence"))
  )
  out["phases_saved_meshes"] = saved_meshes(os.path.join(tmp, "phased"))
  out["phases_rel_diff"] = max_rel_diff(params, reference)

  def on(spatial):
    mesh = config.MeshConfig(num_devices=4, spatial=spatial, shard_params=True)
    return dataclasses.replace(plain, mesh=mesh)

  uninterrupted, _ = train(on(2), os.path.join(tmp, "whole"))
  out["resume_whole_vs_plain"] = max_rel_diff(uninterrupted, reference)
  stopped = os.path.join(tmp, "stopped")
  try:
    train(on(2), stopped, train_fakes.TinyData(signal_at=7))
    raise AssertionError("the run was not stopped")
  except trainer_lib.Preempted:
    pass
  out["resume_saved_meshes"] = saved_meshes(stopped)
  for spatial in (1, 4):
    workdir = os.path.join(tmp, f"resumed{spatial}")
    shutil.copytree(stopped, workdir)
    data = train_fakes.TinyData()
    params, out[f"resume_final_mesh_{spatial}"] = train(on(spatial), workdir, data)
    out[f"resume_first_step_{spatial}"] = data.yielded[0]
    out[f"resume_rel_diff_{spatial}"] = max_rel_diff(params, uninterrupted)
  shutil.rmtree(tmp)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
