"""What goes wrong around a run: blow-ups, damaged checkpoints, a second writer.

Fast runs of the tiny stand-in model (test_trainer.py's); each test names
the guarantee of the README's "What happens when things go wrong".
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import train_fakes
from train_fakes import compilation_cache  # noqa: F401  (fixture)
from graphcast_fdl.checkpoints import integrity
from graphcast_fdl.checkpoints import orbax_params
from graphcast_fdl.train import checkpointing
from graphcast_fdl.train import config
from graphcast_fdl.train import schedule as schedule_lib
from graphcast_fdl.train import trainer as trainer_lib
from graphcast_fdl.train import workdir as workdir_lib


def _experiment(**kwargs):
  """6 single steps then 2 of a fine-tune; checkpoints every 2, 2 kept."""
  return train_fakes.tiny_experiment(steps=(6, 2), every_steps=2, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  result = train_fakes.run_trainer(_experiment(), workdir)
  return workdir, result


def _hot_phase(name, num_steps, lr):
  return schedule_lib.Phase(name, num_steps, learning_rate=schedule_lib.LearningRate(peak=lr))


def test_blow_up_never_checkpoints_nonfinite_state(tmp_path):
  # 1e39 overflows float32: finite gradients, infinite rate and parameters.
  schedule = schedule_lib.Schedule(
      schedule_lib.single_step(6, warmup_steps=3, peak_lr=3e-2) + [_hot_phase("finetune", 6, 1e39)]
  )
  experiment = _experiment(schedule=schedule, train=config.TrainConfig(max_nonfinite_in_a_row=3))
  with pytest.raises(trainer_lib.NonFiniteError) as info:
    train_fakes.run_trainer(experiment, tmp_path)
  message = str(info.value)
  assert "global steps 7-9 in phase 'finetune' at learning rate inf" in message
  assert "last good checkpoint is step 6 in" in message
  assert "\n" not in message
  checkpointer = checkpointing.Checkpointer(str(tmp_path), experiment.checkpoint)
  assert checkpointer.all_steps() == [4, 6]
  for step in checkpointer.all_steps():
    params = orbax_params.load(str(tmp_path), train_fakes.params_target(), step)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def test_blow_up_from_scratch_says_nothing_was_saved(tmp_path):
  experiment = _experiment(
      schedule=schedule_lib.Schedule([_hot_phase("hot", 5, 1e39)]),
      train=config.TrainConfig(max_nonfinite_in_a_row=2),
  )
  with pytest.raises(
      trainer_lib.NonFiniteError,
      match=r"steps 1-2 in phase 'hot' .*no checkpoint was " r"written before it",
  ):
    train_fakes.run_trainer(experiment, tmp_path)


def _data_file_with(step_dir, item, raw: bytes) -> list[str]:
  return [
      f
      for f in glob.glob(os.path.join(step_dir, item, "**", "*"), recursive=True)
      if os.path.isfile(f) and raw in open(f, "rb").read()
  ]


def _flip_a_parameter_byte(step_dir):
  params = orbax_params.load(
      os.path.dirname(step_dir), train_fakes.params_target(), int(os.path.basename(step_dir))
  )
  raw = np.asarray(params["Dense_0"]["kernel"]).tobytes()
  files = _data_file_with(step_dir, "params", raw)
  assert files
  for path in files:
    data = bytearray(open(path, "rb").read())
    data[data.index(raw) + 9] ^= 0x10
    open(path, "wb").write(bytes(data))


def _largest_file(step_dir, item):
  files = [
      f
      for f in glob.glob(os.path.join(step_dir, item, "**", "*"), recursive=True)
      if os.path.isfile(f)
  ]
  return max(files, key=os.path.getsize)


def _truncate(step_dir):
  path = _largest_file(step_dir, "params")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _zero(step_dir):
  path = _largest_file(step_dir, "opt_state")
  open(path, "wb").write(b"\0" * os.path.getsize(path))


def _garbage_meta(step_dir):
  open(os.path.join(step_dir, "meta", "metadata"), "w").write("{not json")


def _wrong_checksum(step_dir):
  """Bytes that read back fine but are not what was saved."""
  path = os.path.join(step_dir, "meta", "metadata")
  meta = json.load(open(path))
  sums = meta["checksums"]["params"]
  key = sorted(sums)[0]
  sums[key] = (sums[key] + 1) % 2**32
  json.dump(meta, open(path, "w"))


def _empty(step_dir):
  shutil.rmtree(step_dir)
  os.makedirs(step_dir)


DAMAGE = {
    "flipped_byte": _flip_a_parameter_byte,
    "truncated": _truncate,
    "zeroed": _zero,
    "no_params": lambda d: shutil.rmtree(os.path.join(d, "params")),
    "no_loop": lambda d: shutil.rmtree(os.path.join(d, "loop")),
    "garbage_meta": _garbage_meta,
    "wrong_checksum": _wrong_checksum,
    "empty_folder": _empty,
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_latest_is_set_aside_and_older_one_resumed(reference, tmp_path, kind, caplog):
  ref_dir, ref_result = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  DAMAGE[kind](str(workdir / "checkpoints" / "8"))
  data = train_fakes.TinyData()
  result = train_fakes.run_trainer(_experiment(), workdir, data)
  assert data.yielded[-2:] == [6, 7]  # Resumed from step 6.
  assert os.path.isdir(workdir / "damaged_checkpoints" / "8")
  assert sorted(os.listdir(workdir / "checkpoints")) == ["6", "8"]
  jax.tree.map(
      np.testing.assert_array_equal,
      orbax_params.load(str(workdir), train_fakes.params_target()),
      orbax_params.load(str(ref_dir), train_fakes.params_target()),
  )
  assert result["eval/loss"] == ref_result["eval/loss"]
  warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
  assert len(warnings) == 1 and "\n" not in warnings[0]
  assert warnings[0].startswith("Checkpoint step 8 is damaged (")
  if kind == "wrong_checksum":
    assert "checksum of params[" in warnings[0]


def test_changed_model_is_a_mismatch_not_damage(reference, tmp_path):
  ref_dir, _ = reference
  wide = jax.tree.map(
      lambda x: np.zeros(x.shape[:-1] + (x.shape[-1] + 1,), x.dtype), train_fakes.params_target()
  )
  with pytest.raises(
      integrity.CheckpointMismatch, match=r"checkpoint step 8 holds params\['Dense_0'\]"
  ):
    orbax_params.load(str(ref_dir), wide)


def test_evaluate_step_not_kept_lists_the_steps(reference):
  ref_dir, _ = reference
  with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 100 in .*; steps kept: 6, 8"):
    orbax_params.load(str(ref_dir), train_fakes.params_target(), step=100)


_HOLD_LOCK = """
import sys, time
sys.path.insert(0, {root!r})
from graphcast_fdl.train import workdir
held = workdir.acquire({path!r})
print("held", flush=True)
time.sleep(600)
"""


def test_second_writer_stops_at_once_and_a_killed_one_frees_the_lock(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  holder = subprocess.Popen(
      [sys.executable, "-c", _HOLD_LOCK.format(root=root, path=str(tmp_path))],
      stdout=subprocess.PIPE,
      text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    start = time.time()
    with pytest.raises(
        workdir_lib.WorkdirBusy,
        match=rf"is in use by pid {holder.pid} on .*: one " "trainer per workdir",
    ):
      train_fakes.run_trainer(_experiment(), tmp_path)
    assert time.time() - start < 5
  finally:
    holder.kill()  # SIGKILL: no chance to clean up.
    holder.wait()
  with workdir_lib.locked(str(tmp_path)):
    with workdir_lib.locked(str(tmp_path)):  # Re-entrant in one process.
      pass


def test_a_file_where_checkpoints_go_stops_before_training(tmp_path):
  (tmp_path / "checkpoints").write_text("")
  with pytest.raises(
      checkpointing.CheckpointSaveError, match="checkpoints is a file, not a folder"
  ):
    train_fakes.run_trainer(_experiment(), tmp_path)


def test_loading_parameters_verifies_their_checksums(reference, tmp_path):
  ref_dir, _ = reference
  shutil.copytree(ref_dir, tmp_path / "run")
  _wrong_checksum(str(tmp_path / "run" / "checkpoints" / "8"))
  with pytest.raises(
      integrity.CheckpointDamaged,
      match=r"checkpoint step 8 in .* is damaged: checksum of " r"params\[",
  ):
    orbax_params.load(str(tmp_path / "run"), train_fakes.params_target())
