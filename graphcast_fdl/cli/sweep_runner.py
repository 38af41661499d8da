"""Sweep steps without flags: validate and estimate members, run them, launch them.

Kept apart from `sweep.py` (which only defines flags) so tests and other tools
can drive a sweep in-process.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

from graphcast_fdl.analysis import hardware as hardware_lib
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
    rows.append(
        {
            "member": member,
            "experiment": experiment,
            "workdir": member_dir,
            "estimate": _estimate(experiment, hardware),
        }
    )
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
  width = max([len("member")] + [len(r["member"].name) for r in rows])
  header = (
      f"{'member':{width}s} {'steps':>8s} {'est. time':>11s} "
      f"{'peak/device':>12s} fits  overrides"
  )
  lines = [header, "-" * len(header)]
  for row in rows:
    estimate = row["estimate"]
    peak = max(p["peak_bytes_per_device"] for p in estimate["phases"])
    fits = all(p["fits"] for p in estimate["phases"])
    lines.append(
        f"{row['member'].name:{width}s} {row['experiment'].schedule.total_steps:8d} "
        f"{format_seconds(estimate['total_duration_seconds']):>11s} "
        f"{peak / 2**30:10.2f}Gi {'yes ' if fits else 'NO  '}  "
        + " ".join(f"--config={d}" for d in row["member"].overrides)
    )
  return "\n".join(lines)


def run_members(rows: list[dict]) -> None:
  """Trains each unfinished member in its own process, in order."""
  for row in rows:
    workdir = row["workdir"]
    if os.path.exists(os.path.join(workdir, "result.json")):
      print(f"{row['member'].name}: finished earlier, skipped")
      continue
    print(f"{row['member'].name}: training in {workdir}", flush=True)
    command = [
        sys.executable,
        "-m",
        "graphcast_fdl.main",
        "train",
        f"--config=config_file:{os.path.join(workdir, 'config.json')}",
        f"--workdir={workdir}",
    ]
    result = subprocess.run(command, check=False)
    if result.returncode:
      raise UsageError(
          f"sweep member {row['member'].name} failed (exit "
          f"{result.returncode}); rerun the sweep to resume it"
      )


def format_results(rows: list[dict]) -> str:
  """The members' final results side by side (a member without a
  `result.json` shows dashes)."""
  width = max([len("member")] + [len(r["member"].name) for r in rows])
  keys = ("eval/loss", "persistence/loss")
  header = f"{'member':{width}s} {'steps':>7s} {'wall time':>10s} " + " ".join(
      f"{k:>17s}" for k in keys
  )
  lines = [header, "-" * len(header)]
  for row in rows:
    path = os.path.join(row["workdir"], "result.json")
    result = {}
    if os.path.exists(path):
      with open(path) as f:
        result = json.load(f)
    cells = [f"{result[k]:17.4g}" if k in result else f"{'-':>17s}" for k in keys]
    wall = result.get("wall_time_s")
    lines.append(
        f"{row['member'].name:{width}s} {result.get('global_step', '-'):>7} "
        f"{'-' if wall is None else f'{wall / 60:.1f} min':>10s} " + " ".join(cells)
    )
  return "\n".join(lines)


def _does_not_fit(row: dict) -> str | None:
  """Why a member would run out of memory, or None when it fits."""
  estimate = row["estimate"]
  worst = max(estimate["phases"], key=lambda p: p["peak_bytes_per_device"])
  if all(p["fits"] for p in estimate["phases"]):
    return None
  return (
      f"does not fit: phase {worst['name']} needs "
      f"{worst['peak_bytes_per_device'] / 2**30:.1f} GiB per device of "
      f"{estimate['memory_bytes_per_device'] / 2**30:.1f} on "
      f"{estimate['hardware']} (try --config=fiddler:fit_memory(), a smaller "
      "model or a device with more memory)"
  )


def write_launch_files(
    rows: list[dict],
    workdir: str,
    slurm: launch_files.SlurmOptions,
    tpu: launch_files.TpuVmOptions,
    *,
    family: str,
    remote_workdir: str | None = None,
) -> tuple[list[str], list[str]]:
  """Per member, a TPU VM script (`family` "tpu") or a SLURM script ("gpu"),
  under workdir/launch. Members that would not fit get none.

  Returns (paths written, one warning per member skipped).
  """
  if family not in ("tpu", "gpu"):
    raise UsageError(
        f"--mode=launch writes TPU VM or SLURM GPU scripts: "
        f"choose a TPU or GPU --hardware, not a {family}"
    )
  if remote_workdir and remote_workdir.startswith("gs://"):
    raise UsageError(
        f"--remote_workdir={remote_workdir}: gs:// is not "
        "supported yet (the trainer writes config and result "
        "files with open()); use a folder every worker mounts"
    )
  launch_dir = os.path.join(workdir, "launch")
  os.makedirs(launch_dir, exist_ok=True)
  written, skipped = [], []
  for row in rows:
    name, member_dir = row["member"].name, os.path.abspath(row["workdir"])
    reason = _does_not_fit(row)
    if reason:
      skipped.append(f"skipped {name}: {reason}")
      continue
    devices = row["experiment"].mesh.num_devices or 1
    config_json = os.path.join(member_dir, "config.json")
    hours = row["estimate"]["total_duration_seconds"] / 3600 * 1.2 + 1
    run_dir = f"{remote_workdir.rstrip('/')}/{name}" if remote_workdir else member_dir
    try:
      if family == "tpu":
        hosts = math.ceil(devices / hardware_lib.TPU_CHIPS_PER_HOST)
        if hosts > 1 and not remote_workdir:
          raise UsageError(
              f"sweep member {name} runs on {devices} chips ({hosts} hosts): "
              "pass --remote_workdir=DIR, a folder every worker mounts (e.g. "
              "a Filestore share), so all of them write one run"
          )
        if not remote_workdir:
          run_dir = f"graphcast_fdl_runs/{name}"  # In the single host's home.
        scripts = {
            f"{name}.tpu_vm.sh": launch_files.tpu_vm_script(
                name, devices, config_json, run_dir, tpu
            )
        }
      else:
        scripts = {
            f"{name}.slurm.sh": launch_files.slurm_script(
                name, devices, config_json, run_dir, dataclasses.replace(slurm, hours=hours)
            )
        }
    except ValueError as e:
      raise UsageError(f"sweep member {name}: {e}") from e
    for filename, text in scripts.items():
      path = os.path.join(launch_dir, filename)
      with open(path, "w") as f:
        f.write(text)
      os.chmod(path, 0o755)
      written.append(path)
  return written, skipped
