"""Launch files for runs that outgrow one machine.

Each reproduces one run exactly through `config_file:`: the config travels
as JSON, never as re-typed flags. On both targets `jax.distributed` finds the
cluster by itself (SLURM's environment; the TPU VM metadata), so the command
is the same on every process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import shlex


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
  gpus_per_node: int = 8
  cpus_per_task: int = 8
  partition: str | None = None
  hours: float = 24.0
  python: str = "python"


@dataclasses.dataclass(frozen=True)
class TpuVmOptions:
  """Where and how a member runs on Cloud TPU VMs.

  `name` prefixes each member's own VM name (member and slice size added),
  so members never share a VM. `package` is what the script builds into a
  wheel here and installs on every worker (a checkout's path or a pip
  requirement), with `jax_requirement` for the TPU runtime.
  """

  name: str = "graphcast-fdl"
  zone: str = "us-central2-b"
  project: str | None = None
  accelerator: str = "v4"
  runtime_version: str = "tpu-ubuntu2204-base"
  python: str = "python3"
  package: str = "graphcast_fdl"
  jax_requirement: str = "jax[tpu]"


def train_command(python: str, config_json: str, workdir: str) -> str:
  return (
      f"{python} -m graphcast_fdl.main train "
      f"--config=config_file:{shlex.quote(config_json)} "
      f"--workdir={shlex.quote(workdir)} --distributed=auto"
  )


def slurm_script(
    name: str,
    num_devices: int,
    config_json: str,
    workdir: str,
    options: SlurmOptions = SlurmOptions(),
) -> str:
  """A batch script: one task per GPU, `num_devices` GPUs in all."""
  per_node = min(options.gpus_per_node, num_devices)
  nodes = math.ceil(num_devices / per_node)
  if nodes * per_node != num_devices:
    raise ValueError(
        f"mesh.num_devices={num_devices} does not fill whole nodes of "
        f"{options.gpus_per_node} GPUs"
    )
  hours = max(1, math.ceil(options.hours))
  lines = [
      "#!/bin/bash",
      f"#SBATCH --job-name=graphcast_fdl-{name}",
      f"#SBATCH --nodes={nodes}",
      f"#SBATCH --ntasks-per-node={per_node}",
      "#SBATCH --gpus-per-task=1",
      f"#SBATCH --cpus-per-task={options.cpus_per_task}",
      f"#SBATCH --time={hours}:00:00",
      f"#SBATCH --output={workdir}/slurm-%j.out",
      "#SBATCH --signal=TERM@300  # time to write a checkpoint before the limit",
      "#SBATCH --requeue",
  ]
  if options.partition:
    lines.append(f"#SBATCH --partition={options.partition}")
  lines += [
      "set -euo pipefail",
      f"mkdir -p {shlex.quote(workdir)}",
      "# One process per GPU; jax.distributed reads SLURM's environment.",
      f"srun {train_command(options.python, config_json, workdir)}",
      "",
  ]
  return "\n".join(lines)


def accelerator_type(accelerator: str, num_devices: int) -> str:
  """Cloud TPU type: v4/v5p slices are named by TensorCores (2 per chip),
  v5e/v6e by chips."""
  cores = num_devices * (2 if accelerator in ("v4", "v5p") else 1)
  return f"{accelerator}-{cores}"


def vm_name(prefix: str, member: str, accelerator: str) -> str:
  """A Cloud TPU VM name of its own per member and slice: lowercase letters,
  digits and hyphens, at most 63 characters (a hash keeps long ones apart)."""
  slug = re.sub(r"[^a-z0-9]+", "-", f"{prefix}-{member}-{accelerator}".lower())
  slug = slug.strip("-")
  if not slug[:1].isalpha():
    slug = f"tpu-{slug}"
  if len(slug) > 63:
    digest = hashlib.sha1(slug.encode()).hexdigest()[:8]
    slug = f"{slug[:54].rstrip('-')}-{digest}"
  return slug


def tpu_vm_script(
    name: str,
    num_devices: int,
    config_json: str,
    workdir: str,
    options: TpuVmOptions = TpuVmOptions(),
) -> str:
  """Create (if needed) this member's TPU VM slice, install the package on
  every worker, and run on all of them at once. `workdir` is as the workers
  see it: on a multi-host slice, a folder every worker mounts."""
  accelerator = accelerator_type(options.accelerator, num_devices)
  vm = vm_name(options.name, name, accelerator)
  project = f" --project={options.project}" if options.project else ""
  where = f"{vm} --zone={options.zone}{project}"
  remote_config = f"launch/{name}.config.json"  # relative to the home folder
  command = train_command(options.python, remote_config, workdir)
  install = (
      f"{options.python} -m pip install -q graphcast_fdl-*.whl "
      f"{shlex.quote(options.jax_requirement)}"
  )
  return "\n".join(
      [
          "#!/bin/bash",
          f"# Run sweep member {name} on its own Cloud TPU {accelerator} slice "
          f"({num_devices} chips), every worker at once.",
          "set -euo pipefail",
          f"PACKAGE=${{PACKAGE:-{shlex.quote(options.package)}}}  "
          "# a checkout or a pip requirement",
          f"gcloud compute tpus tpu-vm describe {where} >/dev/null 2>&1 || \\",
          f"  gcloud compute tpus tpu-vm create {where} "
          f"--accelerator-type={accelerator} --version={options.runtime_version}",
          "# Install the package on every worker, as a wheel built here.",
          "dist=$(mktemp -d)",
          f'{options.python} -m pip wheel --no-deps -q -w "$dist" "$PACKAGE"',
          f'gcloud compute tpus tpu-vm scp "$dist"/graphcast_fdl-*.whl {vm}: '
          f"--worker=all --zone={options.zone}{project}",
          f"gcloud compute tpus tpu-vm ssh {where} --worker=all "
          f"--command={shlex.quote(f'mkdir -p launch && {install}')}",
          f"gcloud compute tpus tpu-vm scp {shlex.quote(config_json)} "
          f"{vm}:{remote_config} --worker=all --zone={options.zone}{project}",
          f"gcloud compute tpus tpu-vm ssh {where} --worker=all "
          f"--command={shlex.quote(command)}",
          "",
      ]
  )
