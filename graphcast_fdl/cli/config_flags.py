"""The `--config` and `--workdir` flags of commands that run one experiment.

`--config` is Fiddle's flag (config:, fiddler:, set:, config_file:) resolved
against the flat `graphcast_fdl.experiments` registry; `directives.py` turns
whatever goes wrong in it into a one-line `UsageError` naming the directive,
path or field at fault, instead of a deep traceback.
"""

from __future__ import annotations

from absl import flags
import fiddle as fdl
from fiddle import absl_flags as fdl_flags

from graphcast_fdl import experiments
from graphcast_fdl.cli import directives
from graphcast_fdl.cli.config_files import flattened  # noqa: F401  (re-exported)
from graphcast_fdl.cli.config_files import write_config_files  # noqa: F401  (re-exported)
from graphcast_fdl.cli.errors import UsageError

CONFIG = fdl_flags.DEFINE_fiddle_config(
    "config",
    default_module=experiments,
    help_string=(
        "Experiment: config:NAME, fiddler:NAME(args), set:path=value, "
        f"config_file:PATH. Configs: {', '.join(experiments.CONFIGS)}; "
        f"fiddlers: {', '.join(experiments.FIDDLERS)}."
    ),
)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, metrics.")


def given_directives() -> list[str]:
  """Every --config value given on the command line, in order."""
  flat = []
  for argument in flags.FLAGS["config"].all_arguments:
    flat.extend([argument] if isinstance(argument, str) else argument)
  return flat


def experiment_config() -> fdl.Config:
  """The un-built experiment config from the `--config` flags."""
  return directives.config_from_directives(given_directives())


def build_experiment(cfg: fdl.Config | None = None):
  """Builds the Experiment; a field that does not fit is a UsageError."""
  return directives.build(experiment_config() if cfg is None else cfg)


def require_workdir() -> str:
  if not WORKDIR.value:
    raise UsageError("--workdir is required for this command")
  return WORKDIR.value
