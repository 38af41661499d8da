"""Phases with their own spatial split, and checkpoints restored on another
layout: the trainer moves the state between meshes without changing a
result (tiny model split in latitude bands, 4 virtual CPU devices)."""

import dataclasses

import pytest

from conftest import run_device_worker
from graphcast_fdl.cli import config_files
from graphcast_fdl.cli import config_flags
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.train import config as train_config
from graphcast_fdl.train import experiment as experiment_lib
from graphcast_fdl.train.experiment import ExperimentError
from graphcast_fdl.train.schedule import Phase
import train_fakes


@pytest.fixture(scope="module")
def worker():
  return run_device_worker("spatial_phases_worker.py", 600)


def test_phases_on_their_own_meshes_equal_one_mesh_throughout(worker):
  # single_step on (data 4), finetune on (data 1, space 4), rollout_2 on
  # (data 2, space 2): the parameters of (data 4) throughout.
  assert worker["phases_rel_diff"] < 1e-5
  assert worker["phases_final_mesh"] == {"data": 2, "space": 2}
  saved = worker["phases_saved_meshes"]
  assert saved["4"] == saved["6"] == {"data": 4}  # 6: the end of single_step
  assert saved["8"] == saved["9"] == {"data": 1, "space": 4}
  assert saved["12"] == saved["13"] == {"data": 2, "space": 2}


def test_evaluation_on_a_spatial_phase_reads_batches_in_bands(worker):
  """The final evaluation on (data 2, space 2): each device holds its data
  row's examples and its latitude band only (not whole examples as on
  (data 4)), and the metrics equal those of the run on (data 4)."""
  # An eval batch: inputs [4, 2, lat 4, lon 8], targets [4, 1, 4, 8].
  assert worker["eval_shards_data4"] == {"inputs": [[1, 2, 4, 8]], "targets": [[1, 1, 4, 8]]}
  assert worker["eval_shards_space2"] == {"inputs": [[2, 2, 2, 8]], "targets": [[2, 1, 2, 8]]}
  assert worker["eval_rel_diff"] < 1e-6


def test_checkpoint_of_data2_space2_resumes_on_other_layouts(worker):
  assert all(m == {"data": 2, "space": 2} for m in worker["resume_saved_meshes"].values())
  assert worker["resume_whole_vs_plain"] < 1e-5
  for spatial, mesh in ((1, {"data": 4}), (4, {"data": 1, "space": 4})):
    # Step 7's batch is read (one ahead) while step 6 runs: saved at 7.
    assert worker[f"resume_first_step_{spatial}"] == 7
    assert worker[f"resume_final_mesh_{spatial}"] == mesh
    assert worker[f"resume_rel_diff_{spatial}"] < 1e-5


def _with_phase(experiment, index, **changes):
  phases = list(experiment.schedule.phases)
  phases[index] = dataclasses.replace(phases[index], **changes)
  return dataclasses.replace(
      experiment, schedule=dataclasses.replace(experiment.schedule, phases=phases)
  )


def test_phase_settings_resolve_the_phase_split():
  experiment = _with_phase(train_fakes.tiny_experiment(num_devices=4), 3, spatial=4)
  meshes = [experiment_lib.phase_settings(experiment, p).mesh for p in experiment.schedule.phases]
  assert [m.spatial for m in meshes] == [1, 1, 1, 4]
  assert meshes[3] == dataclasses.replace(experiment.mesh, spatial=4)


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(spatial=3), "schedule.phases[3].spatial=3 does not divide mesh.num_devices=4"),
        # 4 devices, 2 per example: 2 groups; a batch of 1 cannot split.
        (
            dict(spatial=2, data=DataConfig(source="x", resolution=4.0, global_batch_size=1)),
            "schedule.phases[3].data.global_batch_size=1 is not divisible by "
            "mesh.num_devices=4 / schedule.phases[3].spatial=2",
        ),
    ],
)
def test_bad_phase_splits_name_the_field(changes, message):
  experiment = train_fakes.tiny_experiment(num_devices=4)
  with pytest.raises(ExperimentError) as info:
    _with_phase(experiment, 3, **changes)
  assert message in str(info.value)


def test_phase_spatial_must_be_a_whole_number():
  with pytest.raises(ValueError, match="phase 'p': spatial=0 must be a whole number"):
    Phase("p", 1, spatial=0)


def test_set_phase_fiddler_sets_the_split_shown_by_print_config(parse_flags):
  parse_flags(
      "--config=config:demo",
      "--config=fiddler:devices(n=4)",
      "--config=fiddler:set_phase('rollout_2', spatial=2)",
  )
  cfg = config_flags.experiment_config()
  built = config_flags.build_experiment(cfg)
  index = [p.name for p in built.schedule.phases].index("rollout_2")
  assert built.schedule.phases[index].spatial == 2
  assert experiment_lib.phase_settings(built, built.schedule.phases[index]).mesh.spatial == 2
  assert f"schedule.phases[{index}].spatial: int | None = 2" in config_files.flattened(cfg)
  assert isinstance(built.mesh, train_config.MeshConfig) and built.mesh.spatial == 1


def test_estimate_shows_each_phase_split():
  from graphcast_fdl.analysis import estimator  # pylint: disable=g-import-not-at-top

  experiment = _with_phase(train_fakes.tiny_experiment(num_devices=4), 3, spatial=4)
  est = estimator.estimate(experiment, "tpu_v4")
  assert [p.spatial for p in est.phases] == [1, 1, 1, 4]
  rows = estimator.format_table(est).splitlines()
  header = next(r for r in rows if r.startswith("phase"))
  assert header.split()[3] == "spc"
  # The phase table ends at "total" (the halo table below lists split phases).
  table = rows[: next(i for i, r in enumerate(rows) if r.startswith("total"))]
  assert [r.split()[3] for r in table if r.startswith(("single_step", "finetune", "rollout_"))] == [
      "1",
      "1",
      "1",
      "4",
  ]
