r"""`sweep`: expand a sweep, validate and estimate every member, then run or launch.

  graphcast_fdl sweep --config=config:demo \
      --config=sweep:demo_widths --workdir=/tmp/sweep --mode=run

Each member gets its own workdir with `config.json`; `--mode=run` trains the
members here one after another (a finished member, one with `result.json`, is
skipped, so rerunning resumes the sweep) and ends with their results side
by side; `--mode=launch` writes, per member that fits, a Cloud TPU VM script
(its own VM; installs this package on every worker) or, for GPU hardware, a
SLURM script. Multi-host slices need `--remote_workdir`, a folder every
worker mounts.
"""

from __future__ import annotations

import importlib.metadata
import json
import os

from absl import flags
from fiddle import absl_flags as fdl_flags

from graphcast_fdl import experiments
from graphcast_fdl.cli import launch_files
from graphcast_fdl.cli import sweep_runner
from graphcast_fdl.cli.errors import UsageError

# Fiddle's sweep flag: config:, sweep:, set:, fiddler: directives.
CONFIG = fdl_flags.DEFINE_fiddle_sweep(
    "config",
    default_module=experiments,
    help=(
        "config:NAME, then sweep:NAME(...) (several take the product), "
        f"set:/fiddler: for all members. Sweeps: {', '.join(experiments.SWEEPS)}"
    ),
)
WORKDIR = flags.DEFINE_string("workdir", None, "Sweep root; one subfolder per member.")
MODE = flags.DEFINE_enum(
    "mode",
    "validate",
    ["validate", "run", "launch"],
    "validate: expand, check, estimate, write configs; run: then train each "
    "member here; launch: then write a launch script per member that fits "
    "(Cloud TPU VM for TPU --hardware, SLURM for GPU).",
)
HARDWARE = flags.DEFINE_string(
    "hardware", "cpu", "Hardware the estimates assume (see `estimate --help`)."
)
GPUS_PER_NODE = flags.DEFINE_integer("slurm_gpus_per_node", 8, "GPUs per SLURM node.")
PARTITION = flags.DEFINE_string("slurm_partition", None, "SLURM partition.")
TPU_NAME = flags.DEFINE_string(
    "tpu_name", "graphcast-fdl", "Prefix of the Cloud TPU VM names; each member gets its own VM."
)
TPU_ZONE = flags.DEFINE_string("tpu_zone", "us-central2-b", "Cloud TPU zone.")
TPU_ACCELERATOR = flags.DEFINE_enum(
    "tpu_accelerator",
    None,
    ["v4", "v5p", "v5litepod", "v6e"],
    "TPU generation (default: that of --hardware).",
)
REMOTE_WORKDIR = flags.DEFINE_string(
    "remote_workdir",
    None,
    "Run folders as the launched machines see them, one subfolder per member;"
    " required for multi-host TPU slices: a folder every worker mounts.",
)

_ACCELERATORS = {"tpu_v4": "v4", "tpu_v5e": "v5litepod", "tpu_v5p": "v5p", "tpu_v6e": "v6e"}


def _package() -> str:
  """What the TPU VMs install: this checkout when run from one, else the
  same version from the package index."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  if os.path.exists(os.path.join(root, "pyproject.toml")):
    return root
  return f"graphcast_fdl=={importlib.metadata.version('graphcast_fdl')}"


def main(argv: list[str]) -> None:
  del argv
  if not WORKDIR.value:
    raise UsageError("--workdir is required for sweep")
  directives = list(flags.FLAGS["config"].value or [])
  rows = sweep_runner.prepare_members(directives, WORKDIR.value, HARDWARE.value)
  print(sweep_runner.format_table(rows))
  summary = [
      {
          "member": r["member"].name,
          "overrides": list(r["member"].overrides),
          "workdir": r["workdir"],
          "estimate": r["estimate"],
      }
      for r in rows
  ]
  with open(os.path.join(WORKDIR.value, "sweep.json"), "w") as f:
    json.dump(summary, f, indent=2)
  if MODE.value == "run":
    sweep_runner.run_members(rows)
    print(sweep_runner.format_results(rows))
  elif MODE.value == "launch":
    from graphcast_fdl.analysis import hardware  # pylint: disable=g-import-not-at-top

    slurm = launch_files.SlurmOptions(gpus_per_node=GPUS_PER_NODE.value, partition=PARTITION.value)
    tpu = launch_files.TpuVmOptions(
        name=TPU_NAME.value,
        zone=TPU_ZONE.value,
        accelerator=(TPU_ACCELERATOR.value or _ACCELERATORS.get(HARDWARE.value, "v4")),
        package=_package(),
        jax_requirement=f"jax[tpu]=={importlib.metadata.version('jax')}",
    )
    written, skipped = sweep_runner.write_launch_files(
        rows,
        WORKDIR.value,
        slurm,
        tpu,
        family=hardware.get(HARDWARE.value).family,
        remote_workdir=REMOTE_WORKDIR.value,
    )
    for warning in skipped:
      print(f"warning: {warning}")
    for path in written:
      print(f"wrote {path}")
