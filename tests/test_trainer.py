"""The trainer end to end on a tiny stand-in model and data (fast, one device)."""

import glob
import os

import jax
import numpy as np
import pytest

import train_fakes
from train_fakes import compilation_cache  # noqa: F401  (fixture)
from graphcast_fdl.checkpoints import orbax_params
from graphcast_fdl.train import checkpointing
from graphcast_fdl.train import config
from graphcast_fdl.train import schedule as schedule_lib
from graphcast_fdl.train import trainer as trainer_lib


def _final_params(workdir):
  return orbax_params.load(str(workdir), train_fakes.params_target())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """One uninterrupted run of the tiny schedule, shared by the tests."""
  workdir = tmp_path_factory.mktemp("reference")
  data = train_fakes.TinyData()
  result = train_fakes.run_trainer(train_fakes.tiny_experiment(), workdir, data)
  return workdir, data, result


def test_runs_every_phase_and_beats_persistence(reference):
  workdir, data, result = reference
  assert result["global_step"] == 22
  assert result["eval/loss"] < 0.5 * result["persistence/loss"]
  assert "eval/loss/x" in result and "persistence/loss/x" in result
  # Every global step saw its own batch once, in order.
  assert data.yielded == list(range(22))
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  # Periodic (every 5) and phase-end (12, 16, 19, 22) checkpoints; 2 kept.
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["20", "22"]


def test_finished_run_restarts_as_a_no_op(reference, tmp_path):
  workdir, _, result = reference
  data = train_fakes.TinyData()
  again = train_fakes.run_trainer(train_fakes.tiny_experiment(), workdir, data)
  assert again["global_step"] == 22
  assert again["eval/loss"] == pytest.approx(result["eval/loss"])


def test_sigterm_saves_then_resume_matches_uninterrupted(reference, tmp_path):
  ref_dir, _, ref_result = reference
  # The signal arrives while step 13's batch (the fine-tune phase) is fetched.
  with pytest.raises(trainer_lib.Preempted) as exit_info:
    train_fakes.run_trainer(
        train_fakes.tiny_experiment(), tmp_path, train_fakes.TinyData(signal_at=13)
    )
  assert exit_info.value.code == 128 + 15
  # Step 13's batch is read (one ahead) while step 12 runs: saved at 13.
  assert checkpointing.Checkpointer(str(tmp_path), config.CheckpointConfig()).latest_step() == 13
  data = train_fakes.TinyData()
  result = train_fakes.run_trainer(train_fakes.tiny_experiment(), tmp_path, data)
  assert data.restored == [13]  # The pipeline state saved with the train state.
  assert data.yielded == list(range(13, 22))
  jax.tree.map(np.testing.assert_array_equal, _final_params(tmp_path), _final_params(ref_dir))
  assert result["eval/loss"] == ref_result["eval/loss"]


def test_isolated_nonfinite_steps_are_skipped(tmp_path):
  result = train_fakes.run_trainer(
      train_fakes.tiny_experiment(steps=(6, 1, 1)), tmp_path, train_fakes.TinyData(nan_steps={2, 3})
  )
  assert result["nonfinite_total"] == 2
  assert np.isfinite(result["eval/loss"])


def test_nonfinite_streak_stops_and_keeps_last_good_checkpoint(tmp_path):
  experiment = train_fakes.tiny_experiment(
      steps=(12, 1, 1), every_steps=2, train=config.TrainConfig(max_nonfinite_in_a_row=3)
  )
  with pytest.raises(trainer_lib.NonFiniteError, match=r"3 non-finite steps in a row .*step 4 in"):
    train_fakes.run_trainer(experiment, tmp_path, train_fakes.TinyData(nan_steps=range(4, 12)))
  assert sorted(os.listdir(os.path.join(tmp_path, "checkpoints"))) == ["2", "4"]


def test_finetune_from_our_checkpoint_is_one_field(reference, tmp_path):
  ref_dir, _, _ = reference
  # A zero learning rate keeps the loaded weights: they must be the reference's.
  frozen = schedule_lib.Schedule(
      [schedule_lib.Phase("frozen", 2, learning_rate=schedule_lib.LearningRate(peak=0.0))]
  )
  experiment = train_fakes.tiny_experiment(schedule=frozen, init_checkpoint=str(ref_dir))
  train_fakes.run_trainer(experiment, tmp_path)
  jax.tree.map(np.testing.assert_array_equal, _final_params(tmp_path), _final_params(ref_dir))


def test_evaluate_works_outside_a_run(reference):
  workdir, _, result = reference
  trainer = trainer_lib.Trainer(
      train_fakes.tiny_experiment(),
      str(workdir),
      predictor_factory=train_fakes.TinyPredictor,
      data_module=train_fakes.TinyData(),
  )
  run = trainer.setup()
  assert run.step == 22 and run.iterator is None
  assert trainer.evaluate(run.state.params) == {k: v for k, v in result.items() if "/" in k}
