"""The trainer on the real GraphCast predictor and synthetic_weather data.

All are slow on a shared 2-core CPU (each phase compiles the model for
30 s or more): a tiny schedule in-process, then the acceptance runs: kill-and-resume, 2 processes x
2 devices vs 1 x 4, and the
`demo` config end to end through the command line.
"""

import dataclasses
import json
import os
import subprocess
import sys

from absl import flags
import fiddle as fdl
import numpy as np
import pytest

import real_experiment
import test_trainer_processes as processes
from graphcast_fdl import experiments
from graphcast_fdl.train import trainer as trainer_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  real_experiment.prepare(path)
  return path


@pytest.mark.slow
def test_small_real_schedule_runs_every_phase(data_dir, tmp_path):
  trainer = trainer_lib.Trainer(real_experiment.small_experiment(data_dir), str(tmp_path))
  result = trainer.run()
  assert result["global_step"] == 14
  assert np.isfinite(result["eval/loss"])
  assert np.isfinite(result["persistence/loss"])
  assert "eval/loss/2m_temperature" in result
  assert "persistence/loss/geopotential" in result
  assert result["nonfinite_total"] == 0
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["12", "14"]


@pytest.mark.slow
def test_real_kill_and_resume_equals_uninterrupted(data_dir, tmp_path):
  spec = {"devices": 1, "data_dir": data_dir, "cache_dir": str(tmp_path / "cache")}
  processes.kill_and_resume("demo", tmp_path, spec, kill_after_checkpoint=4, term_after=8)


@pytest.mark.slow
def test_real_kill_inside_a_rollout_phase_resumes_exactly(data_dir, tmp_path):
  # Phases: 1-step [0, 8), fine-tune [8, 11), rollout 2 [11, 14); checkpoints
  # every 4. Killed after step 12's, mid-rollout; the Grain pipeline's state
  # saved with it is restored (one file per process), not rebuilt.
  spec = {
      "devices": 1,
      "data_dir": data_dir,
      "cache_dir": str(tmp_path / "cache"),
      "delay": 1.5,
      "delay_from": 12,
  }
  err = processes.kill_and_resume("demo", tmp_path, spec, kill_after_checkpoint=12)
  assert "Resumed from checkpoint at global step 12" in err
  assert "'next_phase': 'rollout_2'" in err
  saved = os.listdir(tmp_path / "run" / "checkpoints" / "12" / "data_iterator")
  assert "process_0-of-1.json" in saved
  assert "not used" not in err  # Restored, not positioned by the step.


@pytest.mark.slow
def test_real_two_processes_equal_one_process(data_dir, tmp_path):
  common = {"kind": "demo", "data_dir": data_dir}
  one = dict(common, devices=4, workdir=str(tmp_path / "one"), out=str(tmp_path / "one.npz"))
  processes.run_worker(one)
  port = processes.free_port()
  procs = [
      processes.start_worker(
          dict(
              common,
              devices=2,
              num_processes=2,
              process_id=i,
              port=port,
              workdir=str(tmp_path / "two"),
              out=str(tmp_path / "two.npz"),
          )
      )
      for i in range(2)
  ]
  for proc in procs:
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
  processes.assert_same_params(
      processes.load(one["out"]), processes.load(str(tmp_path / "two.npz")), rtol=1e-4, atol=1e-6
  )


@pytest.mark.slow
def test_demo_config_trains_and_beats_persistence(tmp_path):
  """The README's first quick-start command, exactly."""
  command = [
      sys.executable,
      "-m",
      "graphcast_fdl.main",
      "train",
      "--config=config:demo",
      f"--workdir={tmp_path}",
  ]
  proc = subprocess.run(
      ["timeout", "-s", "KILL", "1200", *command],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout[proc.stdout.index("{") :])
  print("demo:", {k: result[k] for k in ("wall_time_s", "eval/loss", "persistence/loss")})
  demo = fdl.build(experiments.demo())
  assert result["global_step"] == sum(p.num_steps for p in demo.schedule.phases) == 360
  assert result["eval/loss"] < result["persistence/loss"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # Two runs of the real model.
def test_worker_processes_train_exactly_as_reader_threads(data_dir, tmp_path):
  # data.num_workers=2: Grain's worker processes (real processes, fed the
  # pickled loader) read the batches; the run ends where the run with reader
  # threads ends, to the bit.
  if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (app.run parses them).
    flags.FLAGS.mark_as_parsed()
  results = {}
  for workers in (0, 2):
    experiment = real_experiment.small_experiment(data_dir)
    experiment = dataclasses.replace(
        experiment, data=dataclasses.replace(experiment.data, num_workers=workers, prefetch=2)
    )
    results[workers] = trainer_lib.Trainer(experiment, str(tmp_path / f"w{workers}")).run()
  losses = sorted(k for k in results[0] if k.startswith(("eval/", "persistence/")))
  assert "eval/loss" in losses and "persistence/loss/geopotential" in losses
  assert {k: results[2][k] for k in losses} == {k: results[0][k] for k in losses}
  assert np.isfinite(results[2]["eval/loss"])
  saved = tmp_path / "w2" / "checkpoints" / "12" / "data_iterator" / "process_0-of-1.json"
  assert json.loads(saved.read_bytes())["num_workers"] == 2


@pytest.mark.slow
@pytest.mark.timeout(2400)  # Three runs of the real model, one in 2 processes.
def test_two_process_run_resumed_by_one_process_continues_the_example_order(
    data_dir, tmp_path, monkeypatch
):
  # 2 processes x 2 devices are preempted (SIGTERM) mid-phase at step 9;
  # 1 process x 4 devices resumes. Grain's saved state is per process and
  # layout, so the new layout is positioned by the step: the same global
  # examples follow, and the run ends where 1 x 4 throughout ends.
  monkeypatch.setattr(processes, "TIMEOUT_S", 900)  # Three real runs on a loaded CPU.
  cache = str(tmp_path / "cache")
  one = dict(kind="demo", data_dir=data_dir, devices=4, cache_dir=cache)
  processes.run_worker(dict(one, workdir=str(tmp_path / "ref"), out=str(tmp_path / "ref.npz")))
  port = processes.free_port()
  procs = [
      processes.start_worker(
          dict(
              kind="demo",
              data_dir=data_dir,
              devices=2,
              num_processes=2,
              process_id=i,
              port=port,
              sigterm_at=9,
              workdir=str(tmp_path / "run"),
              out=str(tmp_path / "first.npz"),
          )
      )
      for i in range(2)
  ]
  for proc in procs:
    _, err = proc.communicate()
    assert proc.returncode == 128 + 15, err[-3000:]
  saved = os.listdir(tmp_path / "run" / "checkpoints" / "9" / "data_iterator")
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(saved)
  last = processes.run_worker(
      dict(one, workdir=str(tmp_path / "run"), out=str(tmp_path / "run.npz"))
  )
  assert "Resumed from checkpoint at global step 9" in last.stderr
  assert "the data continues from the step instead" in last.stderr
  processes.assert_same_params(
      processes.load(str(tmp_path / "ref.npz")),
      processes.load(str(tmp_path / "run.npz")),
      rtol=1e-4,
      atol=1e-6,
  )
