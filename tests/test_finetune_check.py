"""finetune_from stops on weights trained for another function."""

import dataclasses
import os
import subprocess
import sys

import fiddle as fdl
import pytest

from conftest import REPO, golden_dir
from graphcast_fdl import experiments
from graphcast_fdl.checkpoints import compatibility
from graphcast_fdl.checkpoints import npz_format
from graphcast_fdl.cli import init_checkpoint
from graphcast_fdl.cli.errors import UsageError


def test_published_configs_carry_the_released_graph_settings():
  for name in ("graphcast", "graphcast_small", "graphcast_operational"):
    model = fdl.build(getattr(experiments, name)()).model
    assert model.radius_query_fraction_edge_length == 0.5999912857713345
    assert model.mesh2grid_edge_normalization_factor == 0.6180338738074472


def test_function_fields_differ_but_how_it_is_computed_may():
  released = fdl.build(experiments.graphcast())
  model, task = released.model, released.task
  plain = dataclasses.replace(
      model, radius_query_fraction_edge_length=0.6, mesh2grid_edge_normalization_factor=None
  )
  found = compatibility.differences(model, task, plain, task)
  assert found == [
      "model.radius_query_fraction_edge_length: 0.5999912857713345 "
      "(checkpoint) vs 0.6 (experiment)",
      "model.mesh2grid_edge_normalization_factor: 0.6180338738074472 "
      "(checkpoint) vs None (experiment)",
  ]
  faster = dataclasses.replace(model, precision="float32", edge_block_size=None)
  assert compatibility.differences(model, task, faster, task) == []


def _golden_experiment(**model_changes):
  path = os.path.join(golden_dir("c_4deg_m3_l32_f32"), "checkpoint.npz")
  checkpoint = npz_format.load(path)
  experiment = fdl.build(experiments.demo())
  return dataclasses.replace(
      experiment,
      init_checkpoint=path,
      task=checkpoint.task,
      model=dataclasses.replace(checkpoint.model, precision="float32", **model_changes),
  )


def test_golden_checkpoint_matches_its_own_configs():
  init_checkpoint.check(_golden_experiment())


def test_golden_checkpoint_refuses_another_radius():
  with pytest.raises(UsageError) as info:
    init_checkpoint.check(_golden_experiment(radius_query_fraction_edge_length=0.5999912857713345))
  assert "was trained for another function: " in str(info.value)
  assert "radius_query_fraction_edge_length: 0.6 (checkpoint)" in str(info.value)


def test_our_runs_are_checked_against_their_config_json(tmp_path):
  from fiddle.experimental import serialization  # pylint: disable=g-import-not-at-top

  cfg = experiments.demo()
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(serialization.dump_json(cfg))
  experiment = fdl.build(cfg)
  same = dataclasses.replace(experiment, init_checkpoint=str(tmp_path / "checkpoints"))
  init_checkpoint.check(same)
  wider = dataclasses.replace(same, model=dataclasses.replace(experiment.model, latent_size=64))
  with pytest.raises(
      UsageError, match=r"model.latent_size: 32 \(checkpoint\) " r"vs 64 \(experiment\)"
  ):
    init_checkpoint.check(wider)
  with pytest.raises(UsageError, match="no config.json"):
    init_checkpoint.check(
        dataclasses.replace(same, init_checkpoint=str(tmp_path / "checkpoints" / "nowhere" / "x"))
    )


def test_train_command_stops_with_one_line(tmp_path):
  # The demo's model and task are the golden checkpoint's but for this.
  path = os.path.join(golden_dir("c_4deg_m3_l32_f32"), "checkpoint.npz")
  result = subprocess.run(
      [
          "timeout",
          "-s",
          "KILL",
          "300",
          sys.executable,
          "-m",
          "graphcast_fdl.main",
          "train",
          "--config=config:demo",
          f"--config=fiddler:finetune_from({path!r})",
          "--config=set:model.radius_query_fraction_edge_length=0.5999912857713345",
          f"--workdir={tmp_path}",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
  )
  assert result.returncode == 2
  (line,) = result.stderr.strip().splitlines()[-1:]
  assert line == (
      f"error: init_checkpoint={path} was trained for another "
      "function: model.radius_query_fraction_edge_length: 0.6 "
      "(checkpoint) vs 0.5999912857713345 (experiment) (set the "
      "experiment's fields to the checkpoint's to fine-tune it)"
  )
  assert not os.path.exists(tmp_path / "checkpoints")
