"""Sweep steps without flags: validate and estimate members, run them, launch them.

Kept apart from `sweep.py` (which only defines flags) so tests and other tools
can drive a sweep in-process.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from graphcast_fdl.cli import config_files
from graphcast_fdl.cli import directives as directives_lib
from graphcast_fdl.cli import launch_files
from graphcast_fdl.cli import sweep_members
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl.task import format_seconds


def prepare_members(directives, workdir: str, hardware: str) -> list[dict]:
  """Validates, estimates and writes the config of every member."""
  rows, errors = [], []
  for member in sweep_members.expand(directives):
    try:
      cfg = directives_lib.config_from_directives(member.directives)
      experiment = directives_lib.build(cfg)
    except UsageError as e:
      errors.append(f"{member.name}: {e}")
      continue
    member_dir = os.path.join(workdir, member.name)
    config_files.write_config_files(cfg, member_dir)
    rows.append({"member": member, "experiment": experiment, "workdir": member_dir,
                 "estimate": _estimate(experiment, hardware)})
  if errors:
    raise UsageError(f"{len(errors)} invalid sweep member(s): " + " | ".join(errors))
  return rows


def _estimate(experiment, hardware: str) -> dict:
  from graphcast_fdl.analysis import estimator  # pylint: disable=g-import-not-at-top
  try:
    return estimator.estimate(experiment, hardware=hardware, use_xla=False).to_dict()
  except (KeyError, ValueError) as e:
    raise UsageError(f"--hardware={hardware}: {e}") from e


def format_table(rows: list[dict]) -> str:
  header = f"{'member':40s} {'steps':>8s} {'est. time':>11s} {'peak/device':>12s} fits  overrides"
  lines = [header, "-" * len(header)]
  for row in rows:
    estimate = row["estimate"]
    peak = max(p["peak_bytes_per_device"] for p in estimate["phases"])
    fits = all(p["fits"] for p in estimate["phases"])
    lines.append(
        f"{row['member'].name[:40]:40s} {row['experiment'].schedule.total_steps:8d} "
        f"{format_seconds(estimate['total_duration_seconds']):>11s} "
        f"{peak / 2**30:10.2f}Gi {'yes ' if fits else 'NO  '}  "
        + " ".join(f"--config={d}" for d in row["member"].overrides))
  return "\n".join(lines)


def run_members(rows: list[dict]) -> None:
  """Trains each unfinished member in its own process, in order."""
  for row in rows:
    workdir = row["workdir"]
    if os.path.exists(os.path.join(workdir, "result.json")):
      print(f"{row['member'].name}: finished earlier, skipped")
      continue
    print(f"{row['member'].name}: training in {workdir}", flush=True)
    command = [sys.executable, "-m", "graphcast_fdl.main", "train",
               f"--config=config_file:{os.path.join(workdir, 'config.json')}",
               f"--workdir={workdir}"]
    result = subprocess.run(command, check=False)
    if result.returncode:
      raise UsageError(f"sweep member {row['member'].name} failed (exit "
                       f"{result.returncode}); rerun the sweep to resume it")


def write_launch_files(rows: list[dict], workdir: str,
                       slurm: launch_files.SlurmOptions,
                       tpu: launch_files.TpuVmOptions) -> list[str]:
  """One SLURM script and one TPU VM script per member, under workdir/launch."""
  launch_dir = os.path.join(workdir, "launch")
  os.makedirs(launch_dir, exist_ok=True)
  written = []
  for row in rows:
    name, member_dir = row["member"].name, os.path.abspath(row["workdir"])
    devices = row["experiment"].mesh.num_devices or 1
    config_json = os.path.join(member_dir, "config.json")
    hours = row["estimate"]["total_duration_seconds"] / 3600 * 1.2 + 1
    try:
      scripts = {
          f"{name}.slurm.sh": launch_files.slurm_script(
              name, devices, config_json, member_dir,
              dataclasses.replace(slurm, hours=hours)),
          f"{name}.tpu_vm.sh": launch_files.tpu_vm_script(
              name, devices, config_json, member_dir, tpu),
      }
    except ValueError as e:
      raise UsageError(f"sweep member {name}: {e}") from e
    for filename, text in scripts.items():
      path = os.path.join(launch_dir, filename)
      with open(path, "w") as f:
        f.write(text)
      os.chmod(path, 0o755)
      written.append(path)
  return written


