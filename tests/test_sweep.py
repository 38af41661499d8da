"""Sweep expansion, member validation, and launch-file contents."""

import os

import pytest

from graphcast_fdl import experiments
from graphcast_fdl.cli import directives
from graphcast_fdl.cli import launch_files
from graphcast_fdl.cli import sweep_members
from graphcast_fdl.cli.errors import UsageError


def test_demo_sweep_expands_to_two_reproducible_members():
  members = sweep_members.expand(["config:demo", "sweep:demo_widths"])
  assert [m.name for m in members] == [
      "m00_factor=0.05_latent_size=16",
      "m01_factor=0.05_latent_size=32",
  ]
  assert members[0].directives == (
      "config:demo",
      "fiddler:single_step_only()",
      "fiddler:scale_steps(factor=0.05)",
      "set:model.latent_size=16",
  )
  built = [directives.build(directives.config_from_directives(m.directives)) for m in members]
  assert [b.model.latent_size for b in built] == [16, 32]
  assert [(p.name, p.num_steps) for p in built[0].schedule.phases] == [
      ("single_step", 15),
      ("finetune", 2),
  ]


def test_several_sweeps_take_the_product_and_set_applies_to_all():
  members = sweep_members.expand(
      [
          "config:graphcast",
          "sweep:latent_sizes(sizes=(128, 256))",
          "sweep:device_counts(counts=(8, 16, 32))",
          "set:seed=7",
      ]
  )
  assert len(members) == 6
  built = [directives.build(directives.config_from_directives(m.directives)) for m in members]
  assert {(b.model.latent_size, b.mesh.num_devices, b.data.global_batch_size) for b in built} == {
      (l, n, n) for l in (128, 256) for n in (8, 16, 32)
  }
  assert all(b.seed == 7 for b in built)


def test_zipped_sweep_moves_fields_together():
  members = sweep_members.expand(["config:graphcast", "sweep:scaling"])
  built = [directives.build(directives.config_from_directives(m.directives)) for m in members]
  assert [(b.model.resolution, b.model.mesh_size, b.mesh.num_devices) for b in built] == [
      (1.0, 5, 8),
      (0.5, 6, 16),
      (0.25, 6, 32),
  ]
  with pytest.raises(ValueError, match="equal lengths"):
    experiments.sweeps.zipped([{}], [{}, {}])


@pytest.mark.parametrize(
    "args,message",
    [
        (["config:demo", "sweep:widths"], "unknown sweep 'widths'; choose from"),
        (["config:demo"], "no --config=sweep:NAME given"),
        (["sweep:demo_widths"], "a sweep starts with --config=config:NAME"),
        (["config:demo", "sweep:latent_sizes(size=3)"], "unexpected keyword argument 'size'"),
    ],
)
def test_bad_sweeps_name_the_problem(args, message):
  with pytest.raises(UsageError) as info:
    sweep_members.expand(args)
  assert message in str(info.value)


def test_slurm_script_runs_one_process_per_gpu_from_the_config_file():
  script = launch_files.slurm_script(
      "m00",
      16,
      "/runs/m00/config.json",
      "/runs/m00",
      launch_files.SlurmOptions(gpus_per_node=8, partition="gpu", hours=30.2),
  )
  lines = script.splitlines()
  assert lines[0] == "#!/bin/bash"
  for expected in (
      "#SBATCH --nodes=2",
      "#SBATCH --ntasks-per-node=8",
      "#SBATCH --gpus-per-task=1",
      "#SBATCH --time=31:00:00",
      "#SBATCH --partition=gpu",
  ):
    assert expected in lines
  assert lines[-1] == (
      "srun python -m graphcast_fdl.main train "
      "--config=config_file:/runs/m00/config.json "
      "--workdir=/runs/m00 --distributed=auto"
  )
  with pytest.raises(ValueError, match="does not fill whole nodes"):
    launch_files.slurm_script("m", 12, "c.json", "w", launch_files.SlurmOptions(gpus_per_node=8))


def test_tpu_vm_script_installs_and_runs_on_all_workers_of_its_own_slice():
  script = launch_files.tpu_vm_script(
      "m01_n=32",
      32,
      "/runs/m01/config.json",
      "/mnt/shared/m01",
      launch_files.TpuVmOptions(
          name="pod",
          zone="us-central2-b",
          package="/src/graphcast_fdl",
          jax_requirement="jax[tpu]==0.10.2",
      ),
  )
  assert "--accelerator-type=v4-64" in script  # 32 chips = 64 TensorCores.
  assert "tpu-vm create pod-m01-n-32-v4-64 " in script
  assert script.count("--worker=all") == 4
  assert "PACKAGE=${PACKAGE:-/src/graphcast_fdl}" in script
  assert 'pip wheel --no-deps -q -w "$dist" "$PACKAGE"' in script
  assert "pip install -q graphcast_fdl-*.whl" in script
  assert "jax[tpu]==0.10.2" in script
  assert (
      "scp /runs/m01/config.json pod-m01-n-32-v4-64:launch/m01_n=32.config" ".json --worker=all"
  ) in script
  assert (
      "python3 -m graphcast_fdl.main train "
      "--config=config_file:launch/m01_n=32.config.json "
      "--workdir=/mnt/shared/m01 --distributed=auto"
  ) in script
  v6e = launch_files.tpu_vm_script(
      "m", 8, "c.json", "w", launch_files.TpuVmOptions(accelerator="v6e")
  )
  assert "--accelerator-type=v6e-8" in v6e


def test_vm_names_differ_by_member_and_slice_and_stay_valid():
  names = {
      launch_files.vm_name("graphcast-fdl", member, accelerator)
      for member in ("m00_n=16", "m01_n=32")
      for accelerator in ("v4-32", "v4-64")
  }
  assert len(names) == 4
  long = launch_files.vm_name("p", "m00_" + "x=1_" * 30, "v4-8")
  assert len(long) <= 63 and long[0].isalpha()
  assert long != launch_files.vm_name("p", "m01_" + "x=1_" * 30, "v4-8")


def _rows(tmp_path, counts, hardware="tpu_v4", extra=()):
  from graphcast_fdl.cli import sweep_runner  # pylint: disable=g-import-not-at-top

  return sweep_runner.prepare_members(
      [
          "config:graphcast",
          f"sweep:device_counts(counts={counts})",
          "set:model.latent_size=64",
          *extra,
      ],
      str(tmp_path),
      hardware,
  )


def test_launch_needs_shared_workdir_for_multi_host_and_no_slurm_for_tpu(tmp_path):
  from graphcast_fdl.cli import sweep_runner  # pylint: disable=g-import-not-at-top

  # 0.25 deg rollouts of 3+ steps fit no 32 GiB v4 chip (their input windows
  # and targets alone, as XLA:TPU says): members on 95 GiB v5p chips.
  rows = _rows(tmp_path, (4, 16), "tpu_v5p", extra=["fiddler:fit_memory(hardware='tpu_v5p')"])
  slurm, tpu = launch_files.SlurmOptions(), launch_files.TpuVmOptions()
  with pytest.raises(
      UsageError,
      match=r"m01_n=16_per_device_batch=1 runs on " r"16 chips \(4 hosts\): pass --remote_workdir=",
  ):
    sweep_runner.write_launch_files(rows, str(tmp_path), slurm, tpu, family="tpu")
  with pytest.raises(UsageError, match="gs:// is not supported yet"):
    sweep_runner.write_launch_files(
        rows, str(tmp_path), slurm, tpu, family="tpu", remote_workdir="gs://b/s"
    )
  written, skipped = sweep_runner.write_launch_files(
      rows, str(tmp_path), slurm, tpu, family="tpu", remote_workdir="/mnt/shared/s"
  )
  assert skipped == []
  assert [os.path.basename(p) for p in written] == [
      "m00_n=4_per_device_batch=1.tpu_vm.sh",
      "m01_n=16_per_device_batch=1.tpu_vm.sh",
  ]
  assert "--workdir=/mnt/shared/s/m01_n=16_per_device_batch=1" in open(written[1]).read()
  with pytest.raises(UsageError, match="choose a TPU or GPU --hardware"):
    sweep_runner.write_launch_files(rows, str(tmp_path), slurm, tpu, family="cpu")


def test_members_that_do_not_fit_are_skipped_with_a_warning(tmp_path):
  from graphcast_fdl.cli import sweep_runner  # pylint: disable=g-import-not-at-top

  rows = _rows(tmp_path, (4,), extra=["set:model.latent_size=1024"])
  written, skipped = sweep_runner.write_launch_files(
      rows, str(tmp_path), launch_files.SlurmOptions(), launch_files.TpuVmOptions(), family="tpu"
  )
  assert written == []
  (warning,) = skipped
  assert warning.startswith("skipped m00_n=4_per_device_batch=1: does not " "fit: phase ")


def test_prepare_members_writes_replayable_configs_and_estimates(tmp_path):
  from fiddle.experimental import serialization
  from graphcast_fdl.cli import sweep_runner

  rows = sweep_runner.prepare_members(
      ["config:graphcast", "sweep:device_counts(counts=(16, 32))"], str(tmp_path), "tpu_v4"
  )
  assert [r["member"].name for r in rows] == [
      "m00_n=16_per_device_batch=1",
      "m01_n=32_per_device_batch=1",
  ]
  for row, devices in zip(rows, (16, 32)):
    with open(tmp_path / row["member"].name / "config.json") as f:
      replayed = directives.build(serialization.load_json(f.read()))
    assert replayed == row["experiment"]
    assert replayed.mesh.num_devices == devices
    phases = row["estimate"]["phases"]
    assert [p["name"] for p in phases] == [p.name for p in replayed.schedule.phases]
    assert row["estimate"]["total_duration_seconds"] > 0
  table = sweep_runner.format_table(rows).splitlines()
  assert len(table) == 4
  assert "--config=fiddler:devices(n=32,per_device_batch=1)" in table[3]


def test_an_invalid_member_stops_the_sweep_before_anything_runs(tmp_path):
  from graphcast_fdl.cli import sweep_runner

  with pytest.raises(UsageError) as info:
    sweep_runner.prepare_members(
        ["config:demo", "sweep:device_counts(counts=(1, 2))", "set:data.global_batch_size=3"],
        str(tmp_path),
        "cpu",
    )
  assert str(info.value).startswith("1 invalid sweep member(s): m01_n=2")
  assert "global_batch_size=3 is not divisible by mesh.num_devices=2" in str(info.value)


def test_two_member_demo_sweep_runs_to_completion_and_resumes(tmp_path):
  import json
  import os
  import subprocess
  import sys

  workdir = tmp_path / "sweep"
  command = [
      sys.executable,
      "-m",
      "graphcast_fdl.main",
      "sweep",
      "--config=config:demo",
      "--config=sweep:demo_widths",
      f"--config=set:data.data_dir={str(tmp_path / 'data')!r}",
      "--config=set:data.synthetic_days=(20, 10)",
      f"--workdir={workdir}",
      "--mode=run",
  ]
  env = {**os.environ, "HOME": str(tmp_path)}
  first = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
  assert first.returncode == 0, first.stderr[-3000:]
  members = json.loads((workdir / "sweep.json").read_text())
  assert [m["member"] for m in members] == [
      "m00_factor=0.05_latent_size=16",
      "m01_factor=0.05_latent_size=32",
  ]
  for member in members:
    result = json.loads((workdir / member["member"] / "result.json").read_text())
    assert result["global_step"] == 17
    assert 0 < result["eval/loss"] < float("inf")
    assert (workdir / member["member"] / "checkpoints" / "17").is_dir()
  again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count("finished earlier, skipped") == 2
  # The members' results side by side, names in full.
  table = again.stdout.splitlines()[-4:]
  assert table[0].split() == ["member", "steps", "wall", "time", "eval/loss", "persistence/loss"]
  assert table[3].startswith("m01_factor=0.05_latent_size=32      17 ")


def test_results_table_compares_members(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli import sweep_runner  # pylint: disable=g-import-not-at-top

  members = sweep_members.expand(["config:demo", "sweep:demo_widths"])
  rows = []
  for i, member in enumerate(members):
    workdir = tmp_path / member.name
    workdir.mkdir()
    if i == 0:
      (workdir / "result.json").write_text(
          json.dumps(
              {"global_step": 17, "wall_time_s": 90.0, "eval/loss": 1.25, "persistence/loss": 8.5}
          )
      )
    rows.append({"member": member, "workdir": str(workdir)})
  lines = sweep_runner.format_results(rows).splitlines()
  assert lines[2].split() == ["m00_factor=0.05_latent_size=16", "17", "1.5", "min", "1.25", "8.5"]
  assert lines[3].split() == ["m01_factor=0.05_latent_size=32", "-", "-", "-", "-"]
