"""Launch files for runs that outgrow one machine.

Each reproduces one run exactly through `config_file:`: the config travels
as JSON, never as re-typed flags. On both targets `jax.distributed` finds the
cluster by itself (SLURM's environment; the TPU VM metadata), so the command
is the same on every process.
"""

from __future__ import annotations

import dataclasses
import math
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
  name: str = "graphcast-fdl"
  zone: str = "us-central2-b"
  project: str | None = None
  accelerator: str = "v4"
  runtime_version: str = "tpu-ubuntu2204-base"
  repo_dir: str = "graphcast_fdl"  # relative to the home directory on each worker
  python: str = "python3"


def train_command(python: str, config_json: str, workdir: str) -> str:
  return (f"{python} -m graphcast_fdl.main train "
          f"--config=config_file:{shlex.quote(config_json)} "
          f"--workdir={shlex.quote(workdir)} --distributed=auto")


def slurm_script(name: str, num_devices: int, config_json: str, workdir: str,
                 options: SlurmOptions = SlurmOptions()) -> str:
  """A batch script: one task per GPU, `num_devices` GPUs in all."""
  per_node = min(options.gpus_per_node, num_devices)
  nodes = math.ceil(num_devices / per_node)
  if nodes * per_node != num_devices:
    raise ValueError(
        f"mesh.num_devices={num_devices} does not fill whole nodes of "
        f"{options.gpus_per_node} GPUs")
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


def tpu_vm_script(name: str, num_devices: int, config_json: str, workdir: str,
                  options: TpuVmOptions = TpuVmOptions()) -> str:
  """Create (if needed) a TPU VM slice and run on all of its workers."""
  # v4/v5p slices are named by TensorCores (2 per chip); v5e/v6e by chips.
  cores = num_devices * (2 if options.accelerator in ("v4", "v5p") else 1)
  accelerator = f"{options.accelerator}-{cores}"
  project = f" --project={options.project}" if options.project else ""
  where = f"{shlex.quote(options.name)} --zone={options.zone}{project}"
  remote_config = f"launch/{name}.config.json"  # relative to repo_dir
  command = (f"cd {options.repo_dir} && "
             + train_command(options.python, remote_config, workdir))
  return "\n".join([
      "#!/bin/bash",
      f"# Run sweep member {name} on a Cloud TPU {accelerator} slice "
      f"({num_devices} chips), every worker at once.",
      "set -euo pipefail",
      f"gcloud compute tpus tpu-vm describe {where} >/dev/null 2>&1 || \\",
      f"  gcloud compute tpus tpu-vm create {where} "
      f"--accelerator-type={accelerator} --version={options.runtime_version}",
      f"gcloud compute tpus tpu-vm ssh {where} --worker=all "
      f"--command={shlex.quote(f'mkdir -p {options.repo_dir}/launch')}",
      f"gcloud compute tpus tpu-vm scp {shlex.quote(config_json)} "
      f"{shlex.quote(options.name)}:{options.repo_dir}/{remote_config} --worker=all "
      f"--zone={options.zone}{project}",
      f"gcloud compute tpus tpu-vm ssh {where} --worker=all "
      f"--command={shlex.quote(command)}",
      "",
  ])
