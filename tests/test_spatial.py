"""Spatial parallelism: one example split over 2 or 4 devices, exactly."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_device_worker
from graphcast_fdl.model import spatial as spatial_lib

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.timeout(1200)  # Seven compiles of the real model; slow when the machine is shared.
def test_two_and_four_way_splits_equal_one_device():
  """float32 loss and gradients split 2 and 4 ways equal the unsplit model's.

  Relative means: for the loss |a - b| / |b|; for the gradients, as the
  issue states it (one vector), the 2-norm of the difference over all
  parameters over the 2-norm of the unsplit gradient: both within 1e-6
  (measured 0 and 5.3e-7 to 6.4e-7). Per array, max |a - b| / max |b| is
  also bounded (measured 1.3e-6 to 2.0e-6, in the edge MLPs' biases and
  layer-norm offsets of grid2mesh: sums over every edge with much
  cancellation). The split adds the same terms in another order (each
  device sums its band's edges and nodes, the space axis adds the K
  parts; a sender's cotangent gathers its halo part last; remat's edge and
  row blocks are cut K ways), and float32 rounding of a reordered sum is
  all that differs: the unsplit model on the same two examples in the
  other order differs from itself too (`floor_*`: 7.5e-8 over all, 3.4e-7
  per array; swapping two examples reorders less than cutting every sum
  into K parts).
  """
  out = run_device_worker("spatial_worker.py", 900)
  assert out["floor_rel_grads"] > 0  # The order alone changes float32 sums.
  for name, k in (("plain", 2), ("plain", 4), ("remat", 4)):
    assert out[f"{name}_loss_1"] > 0
    assert out[f"{name}_same_tree_{k}"]  # Same parameters: same checkpoints.
    assert out[f"{name}_halo_{k}"] > 0  # Some senders did live elsewhere.
    assert out[f"{name}_rel_loss_{k}"] < 1e-6, out
    assert out[f"{name}_rel_grads_{k}"] < 1e-6, out
    assert out[f"{name}_array_rel_grads_{k}"] < 3e-6, out
  for k in (2, 4):  # The forecast rollout and persistence, split.
    assert out[f"rollout_rel_{k}"] < 1e-6
    assert out[f"persistence_rel_{k}"] < 1e-6
  assert out["eval_predictor_parts"] == 4


def test_forecast_split_wider_than_the_machine_names_the_field():
  from graphcast_fdl.cli import eval_flags  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli.errors import UsageError  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.train.config import MeshConfig  # pylint: disable=g-import-not-at-top

  with pytest.raises(UsageError, match=r"mesh.spatial=2 but 1 device\(s\) are visible"):
    eval_flags.predictor_for(None, None, None, MeshConfig(spatial=2), devices=["cpu"])


@pytest.fixture(scope="module")
def train_steps():
  return run_device_worker("spatial_train_worker.py", 600)


def test_train_steps_on_data2_space2_equal_data4(train_steps):
  out = train_steps
  assert out["data4_mesh"] == {"data": 4}
  assert out["data2_space2_mesh"] == {"data": 2, "space": 2}
  assert len(out["data4_losses"]) == 2
  for name in ("data2_space2", "bands"):
    for a, b in zip(out[f"{name}_losses"], out["data4_losses"]):
      assert abs(a - b) <= 1e-6 * abs(b)
  # Parameters after two AdamW steps: 1e-6 over all of them (1.2e-8
  # seen). Adam normalises each gradient component, so float32 noise of
  # the sum order shows up larger in an element whose gradient is near
  # zero, and a bias that starts at zero has a small max after two steps:
  # per array 2.2e-5 seen (session 5); a wrong split is off by >1e-2. The
  # issue's rtol 1e-5 is for a demo run: the slow tests below (per array,
  # max |a - b| <= 1e-5 max |b|).
  for prefix in ("", "bands_"):
    assert out[f"{prefix}norm_rel_diff_params"] < 1e-6
    assert out[f"{prefix}max_rel_diff_params"] < 5e-5, out


def test_train_batch_in_latitude_bands(train_steps):
  """`place_batch`: 7 latitudes padded to 2 bands of 4; each device holds
  its data row's 2 examples and its band, day progress (no latitude) whole."""
  out = train_steps
  assert out["bands_shards"]["temperature"] == [[2, 2, 2, 4, 12]] * 4
  assert out["bands_shards"]["day_progress_cos"] == [[2, 2, 12]] * 4


@pytest.mark.slow
def test_demo_run_on_data2_space2_ends_equal_to_data4(tmp_path):
  """The trainer end to end: 14 steps in 3 phases (rollout 1 and 2), eval."""
  import real_experiment  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path / "data")
  real_experiment.prepare(data_dir)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
  params = {}
  for spatial in (1, 2):
    spec = dict(
        kind="demo",
        data_dir=data_dir,
        devices=4,
        spatial=spatial,
        workdir=str(tmp_path / f"run{spatial}"),
        out=str(tmp_path / f"params{spatial}.npz"),
    )
    result = subprocess.run(
        [
            "timeout",
            "-s",
            "KILL",
            "900",
            sys.executable,
            os.path.join(HERE, "train_worker.py"),
            json.dumps(spec),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(spec["out"]) as data:
      params[spatial] = {k: data[k] for k in data.files}
  assert params[1].keys() == params[2].keys()
  for key, expected in params[1].items():
    scale = np.abs(expected).max()
    assert np.abs(params[2][key] - expected).max() <= 1e-5 * scale, key


@pytest.mark.slow
@pytest.mark.timeout(2400)  # Three runs of the real model, one in 2 processes.
def test_demo_two_processes_space2_equal_one_process(tmp_path):
  """The real model on 2 processes x 2 devices, (data 2, space 2): each
  process's devices share its examples (halo all_to_all within a process,
  the data-axis mean across the two); ends equal to one process of 4
  devices with the same layout and to (data 4)."""
  import real_experiment  # pylint: disable=g-import-not-at-top
  from test_trainer_processes import free_port  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path / "data")
  real_experiment.prepare(data_dir)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")

  def command(spec):
    worker = os.path.join(HERE, "train_worker.py")
    return ["timeout", "-s", "KILL", "900", sys.executable, worker, json.dumps(spec)]

  def spec(name, **kw):
    kw.setdefault("devices", 4)
    out = str(tmp_path / f"{name}.npz")
    return dict(kind="demo", data_dir=data_dir, workdir=str(tmp_path / name), out=out, **kw)

  def load(path):
    with np.load(path) as data:
      return {k: data[k] for k in data.files}

  port = free_port()
  two = [
      subprocess.Popen(
          command(spec("two", devices=2, spatial=2, num_processes=2, process_id=i, port=port)),
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for i in range(2)
  ]
  for proc in two:
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
  for name, kw in (("one", dict(spatial=2)), ("data4", {})):
    result = subprocess.run(
        command(spec(name, **kw)), capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
  params = load(str(tmp_path / "two.npz"))
  for name in ("one", "data4"):
    expected = load(str(tmp_path / f"{name}.npz"))
    assert params.keys() == expected.keys()
    for key, value in expected.items():
      assert np.abs(params[key] - value).max() <= 1e-5 * np.abs(value).max(), (name, key)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # Five runs of the real model.
def test_demo_layout_changes_end_equal_to_data4(tmp_path):
  """The real model through the trainer: phases on (data 4), (data 1,
  space 4), (data 2, space 2); and a run on (data 2, space 2) stopped by
  SIGTERM, resumed on (data 4) and on (data 1, space 4)."""
  import real_experiment  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path / "data")
  real_experiment.prepare(data_dir)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")

  def train(spec, returncode=0):
    command = [
        "timeout",
        "-s",
        "KILL",
        "900",
        sys.executable,
        os.path.join(HERE, "train_worker.py"),
    ]
    result = subprocess.run(
        command + [json.dumps(spec)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == returncode, result.stderr[-3000:]
    return result

  def load(path):
    with np.load(path) as data:
      return {k: data[k] for k in data.files}

  def spec(name, **kw):
    return dict(
        kind="demo",
        data_dir=data_dir,
        devices=4,
        workdir=str(tmp_path / name),
        out=str(tmp_path / f"{name}.npz"),
        **kw,
    )

  def same(a, b):
    assert a.keys() == b.keys()
    for key, expected in b.items():
      assert np.abs(a[key] - expected).max() <= 1e-5 * np.abs(expected).max(), key

  reference = spec("data4")
  train(reference)
  expected = load(reference["out"])
  phased = spec("phased", phase_spatial={"finetune": 4, "rollout_2": 2})
  train(phased)
  same(load(phased["out"]), expected)

  stopped = spec("stopped", spatial=2, sigterm_at=9)  # Mid-finetune.
  train(stopped, returncode=128 + signal.SIGTERM)
  for spatial in (1, 4):
    resumed = spec(f"resumed{spatial}", spatial=spatial)
    shutil.copytree(stopped["workdir"], resumed["workdir"])
    result = train(resumed)
    # Step 9's batch is read (one ahead) while step 8 runs: saved at 9.
    assert "Resumed from checkpoint at global step 9" in result.stderr
    same(load(resumed["out"]), expected)


def test_blocks_scale_with_the_split():
  from graphcast_fdl.model.config import ModelConfig, RematConfig  # pylint: disable=g-import-not-at-top

  model = ModelConfig(edge_block_size=32768, remat=RematConfig(grid_block_size=100))
  scaled = spatial_lib.part_blocks(model, 4)
  assert (scaled.edge_block_size, scaled.remat.grid_block_size) == (8192, 25)
  assert spatial_lib.part_blocks(ModelConfig(), 4) == ModelConfig()  # None stays None.
  assert spatial_lib.part_blocks(model, 1) is model
