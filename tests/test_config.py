"""Registered configs, fiddlers, flag forms, JSON replay and bad overrides."""

import json
import subprocess
import sys

import fiddle as fdl
from fiddle.experimental import serialization
import pytest

from graphcast_fdl import experiments
from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl.train.experiment import Experiment


@pytest.mark.parametrize("name", experiments.CONFIGS)
def test_every_config_builds_without_allocating(name):
  experiment = fdl.build(getattr(experiments, name)())
  assert isinstance(experiment, Experiment)
  assert experiment.model.resolution == experiment.data.resolution


def test_published_configs_hold_the_published_numbers():
  big = fdl.build(experiments.graphcast())
  assert (big.model.resolution, big.model.mesh_size, big.task.num_levels) == (0.25, 6, 37)
  assert (big.mesh.num_devices, big.data.global_batch_size) == (32, 32)
  phases = big.schedule.phases
  assert phases[0].num_steps == 300_000 and phases[0].learning_rate.warmup_steps == 1000
  assert [p.rollout_steps for p in phases[1:]] == list(range(2, 13))
  assert all(p.num_steps == 1000 and p.learning_rate.peak == 3e-7 for p in phases[1:])
  small = fdl.build(experiments.graphcast_small())
  assert (small.model.resolution, small.model.mesh_size, small.task.num_levels) == (1.0, 5, 13)
  ops = fdl.build(experiments.graphcast_operational())
  assert "total_precipitation_6hr" not in ops.task.input_variables
  assert "total_precipitation_6hr" in ops.task.target_variables
  finetune = [p for p in ops.schedule.phases if p.data is not None]
  assert [(p.num_steps, p.rollout_steps) for p in finetune] == [(30_000, 1)]
  assert ops.schedule.total_steps == big.schedule.total_steps + 30_000


@pytest.mark.parametrize("name", experiments.CONFIGS)
def test_json_round_trip_is_exact(name):
  cfg = getattr(experiments, name)()
  text = serialization.dump_json(cfg)
  assert serialization.load_json(text) == cfg
  assert fdl.build(serialization.load_json(text)) == fdl.build(cfg)


def test_resolution_changes_grid_mesh_and_every_data_source():
  cfg = experiments.graphcast_operational()
  experiments.resolution(cfg, degrees=1.0)
  built = fdl.build(cfg)
  assert built.model.resolution == built.data.resolution == 1.0
  assert built.model.mesh_size == 5
  assert [p.data.resolution for p in built.schedule.phases if p.data] == [1.0]
  experiments.resolution(cfg, degrees=2.0, mesh_size=3)
  assert fdl.build(cfg).model.mesh_size == 3


def test_devices_changes_mesh_and_every_batch():
  cfg = experiments.graphcast_operational()
  experiments.devices(cfg, n=8, per_device_batch=2)
  built = fdl.build(cfg)
  assert built.mesh.num_devices == 8
  assert built.data.global_batch_size == 16
  assert [p.data.global_batch_size for p in built.schedule.phases if p.data] == [16]


def test_schedule_fiddlers_compose():
  cfg = experiments.graphcast()
  experiments.annealing(cfg, max_rollout=4, steps_each=10)
  experiments.insert_phase(cfg, name="extra", num_steps=7, after="single_step")
  experiments.set_phase(cfg, "rollout_3", num_steps=5, lr=1e-5)
  experiments.remove_phase(cfg, "rollout_2")
  schedule = fdl.build(cfg).schedule
  assert [(p.name, p.num_steps, p.rollout_steps) for p in schedule.phases] == [
      ("single_step", 300_000, 1),
      ("extra", 7, 1),
      ("rollout_3", 5, 3),
      ("rollout_4", 10, 4),
  ]
  assert schedule.phases[2].learning_rate.peak == 1e-5
  spans = schedule.spans()
  assert [s.start for s in spans] == [0, 300_000, 300_007, 300_012]
  assert schedule.span_at(300_011).phase.name == "rollout_3"
  assert schedule.span_at(schedule.total_steps) is None


def test_scale_steps_keeps_at_least_one_step():
  cfg = experiments.graphcast()
  experiments.scale_steps(cfg, factor=0.001)
  phases = fdl.build(cfg).schedule.phases
  assert phases[0].num_steps == 300 and phases[0].learning_rate.warmup_steps == 1
  assert all(p.num_steps == 1 for p in phases[1:])


def test_every_flag_form_parses(parse_flags, tmp_path):
  parse_flags(
      "--config=config:demo",
      "--config=fiddler:devices(n=2, per_device_batch=3)",
      "--config=fiddler:resolution(degrees=2.0)",
      "--config=set:model.latent_size=48",
      "--config=set:schedule.phases[0].num_steps=5",
  )
  cfg = config_flags.experiment_config()
  built = config_flags.build_experiment(cfg)
  assert (built.mesh.num_devices, built.data.global_batch_size) == (2, 6)
  assert (built.model.resolution, built.model.mesh_size) == (2.0, 4)
  assert built.model.latent_size == 48 and built.schedule.phases[0].num_steps == 5
  config_flags.write_config_files(cfg, str(tmp_path))
  lines = (tmp_path / "config.txt").read_text().splitlines()
  assert "model.latent_size: int = 48" in lines
  parse_flags(f"--config=config_file:{tmp_path / 'config.json'}")
  assert config_flags.build_experiment() == built


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config=config:demoo"], "unknown config 'demoo'; choose from demo"),
        (
            ["--config=config:demo", "--config=fiddler:devicez(n=2)"],
            "unknown fiddler 'devicez'; choose from resolution, devices",
        ),
        (
            ["--config=config:demo", "--config=set:model.latnt_size=3"],
            "model (ModelConfig) has no field 'latnt_size'; valid fields: resolution",
        ),
        (
            ["--config=config:demo", "--config=set:model.latent_size='big'"],
            "model.latent_size='big': expected int, got str",
        ),
        (
            ["--config=config:demo", "--config=set:model.precision='f16'"],
            "model.precision='f16': must be one of ('float32', 'bfloat16')",
        ),
        (
            ["--config=config:demo", "--config=set:mesh.num_devices=4"],
            "data.global_batch_size=2 is not divisible by mesh.num_devices=4",
        ),
        (
            ["--config=config:demo", "--config=fiddler:devices(m=2)"],
            "unexpected keyword argument 'm'; usage: devices(n: int",
        ),
        (
            ["--config=config:demo", "--config=set:schedule.phases[7].num_steps=1"],
            "schedule.phases[7]: index out of range (length 5)",
        ),
        (
            ["--config=config_file:/no/such/config.json"],
            "config file not found: /no/such/config.json",
        ),
        (
            ["--config=config:demo", "--config=fiddler:resolution(degrees=7)"],
            "must divide both 180 and 360",
        ),
        # Every numeric field is range-checked when the config is built.
        (
            ["--config=config:demo", "--config=set:model.latent_size=0"],
            "model.latent_size=0: must be >= 1",
        ),
        (
            ["--config=config:demo", "--config=set:model.gnn_msg_steps=-2"],
            "model.gnn_msg_steps=-2: must be >= 1",
        ),
        (
            ["--config=config:demo", "--config=set:log_every_steps=0"],
            "log_every_steps=0: must be >= 1",
        ),
        (
            ["--config=config:demo", "--config=set:checkpoint.every_steps=-1"],
            "checkpoint.every_steps=-1: must be >= 0",
        ),
        (
            ["--config=config:demo", "--config=set:checkpoint.max_to_keep=0"],
            "checkpoint.max_to_keep=0: must be >= 1",
        ),
        (
            ["--config=config:demo", "--config=set:eval.num_batches=0"],
            "eval.num_batches=0: must be >= 1",
        ),
        (
            ["--config=config:demo", "--config=set:optimizer.eps=0.0"],
            "optimizer.eps=0.0: must be > 0",
        ),
        (
            ["--config=config:demo", "--config=set:data.prefetch=-1"],
            "data.prefetch=-1: must be >= 0",
        ),
        # Directive errors in words, not Python's.
        (
            ["--config=config:demo", "--config=set:model.precision=float32"],
            "model.precision=float32 is not a Python literal: quote strings, "
            "model.precision='float32'",
        ),
        (
            ["--config=config:demo", "--config=set:model.latent_size="],
            "'' is not a Python literal; write numbers as 48",
        ),
        (["--config=config:demo", "--config=set:model"], "set: needs path=value"),
        (
            ["--config=config:demo", "--config=fiddler:resolution(degrees='x')"],
            "degrees='x': expected float, got str; usage: resolution(",
        ),
        (
            ["--config=config:demo", "--config=fiddler:set_phase(single_step)"],
            "name=single_step is not a Python literal: quote strings, " "name='single_step'",
        ),
    ],
)
def test_bad_overrides_name_the_field(parse_flags, args, message):
  parse_flags(*args)
  with pytest.raises(UsageError) as info:
    config_flags.build_experiment()
  assert message in str(info.value)
  assert "\n" not in str(info.value)


def test_device_count_must_divide_batch_even_if_set_directly(parse_flags):
  parse_flags(
      "--config=config:demo",
      "--config=fiddler:devices(n=2)",
      "--config=set:data.global_batch_size=3",
  )
  with pytest.raises(
      UsageError, match="global_batch_size=3 is not divisible by mesh.num_devices=2"
  ):
    config_flags.build_experiment()


def test_command_line_error_is_one_line_with_exit_code_2():
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "graphcast_fdl.main",
          "print_config",
          "--config=config:demo",
          "--config=set:model.latnt_size=3",
      ],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "error: --config=set:model.latnt_size=3: model (ModelConfig) has no field "
      "'latnt_size'; valid fields: resolution, include_poles, mesh_size, "
      "latent_size, gnn_msg_steps, hidden_layers, "
      "radius_query_fraction_edge_length, mesh2grid_edge_normalization_factor, "
      "precision, remat, edge_block_size, grid_parts_per_edge"
  ]


def test_print_config_json_replays(tmp_path):
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "graphcast_fdl.main",
          "print_config",
          "--config=config:graphcast",
          "--config=fiddler:devices(n=4)",
          "--format=json",
      ],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert result.returncode == 0, result.stderr
  path = tmp_path / "config.json"
  path.write_text(result.stdout)
  cfg = serialization.load_json(path.read_text())
  assert fdl.build(cfg).mesh.num_devices == 4
  assert json.loads(result.stdout)  # Valid JSON.


def test_rollout_knobs_are_one_list():
  """`RematConfig.without_rollout_knobs` turns off every knob that moves a
  rollout's data (the split model and `fiddler:devices(spatial>1)` rely on
  it), and nothing else."""
  from graphcast_fdl.model.config import RematConfig  # pylint: disable=g-import-not-at-top

  on = RematConfig(
      rollout_step=True,
      processor_every_k=3,
      rollout_saves="prediction",
      offload_rollout=True,
      host_targets=True,
      host_inputs=True,
  )
  assert on.has_rollout_knobs
  assert on.without_rollout_knobs() == RematConfig(rollout_step=True, processor_every_k=3)
  assert not on.without_rollout_knobs().has_rollout_knobs
  for knob in ("host_targets", "host_inputs"):
    assert RematConfig(**{knob: True}).has_rollout_knobs
