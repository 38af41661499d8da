"""The one entry point: `graphcast_fdl COMMAND --flags`.

(`python -m graphcast_fdl.main COMMAND` is the same.)

Each command is a module `graphcast_fdl.cli.COMMAND` with a `main(argv)`;
only the chosen one is imported, so `print_config` does not pay for JAX.
"""

from __future__ import annotations

import importlib
import sys

from absl import app
from absl import flags

from graphcast_fdl.cli import help as command_help
from graphcast_fdl.cli import errors
from graphcast_fdl.cli import logs
from graphcast_fdl.cli.errors import UsageError

COMMANDS = {
    "train": "train a model through its phase schedule",
    "print_config": "print the resolved experiment config, one field a line",
    "estimate": "estimate time and memory per phase before launching",
    "evaluate": "score a checkpoint against the evaluation split",
    "forecast": "write a forecast and maps from one initial time",
    "predict": "roll a checkpoint out on netCDF inputs, as the published code does",
    "sweep": "expand, validate, estimate and run or launch a sweep",
    "compute_stats": "compute normalisation statistics of a dataset split",
}


def _usage() -> str:
  lines = ["usage: graphcast_fdl COMMAND [--flags]", "commands:"]
  lines += [f"  {name:14s} {text}" for name, text in COMMANDS.items()]
  lines += ["`graphcast_fdl COMMAND --help` lists the flags of one command."]
  return "\n".join(lines)


def _load(command: str):
  try:
    return importlib.import_module(f"graphcast_fdl.cli.{command}")
  except ModuleNotFoundError as e:
    if e.name == f"graphcast_fdl.cli.{command}":
      raise UsageError(f"command {command!r} is not built yet") from e
    raise


def _guarded(main_fn):
  """Runs a command's main; bad input becomes one line and exit code 2, any
  other failure a user can cause one line and exit 1 (`--debug`: traceback)."""

  def run_main(argv):
    errors.exit_on_failure(main_fn, argv)

  return run_main


def run(argv: list[str] | None = None) -> None:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(_usage())
    sys.exit(0 if len(argv) >= 2 else 2)
  command = argv[1]
  if command not in COMMANDS:
    print(
        f"error: unknown command {command!r}; choose from " f"{', '.join(COMMANDS)}",
        file=sys.stderr,
    )
    sys.exit(2)
  logs.quiet_environment(argv[2:])
  try:
    module = _load(command)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if any(a in command_help.HELP_ARGS for a in argv[2:]):
    print(command_help.command_help(command, COMMANDS[command], module))
    sys.exit(0)
  if any(a in command_help.HELPFULL_ARGS for a in argv[2:]):
    print(flags.FLAGS.get_help())
    sys.exit(0)
  logs.install()
  if command == "train":  # Its metric writers import TensorFlow.
    logs.import_tensorflow_quietly(argv[2:])
  app.run(_guarded(module.main), argv=[f"{argv[0]} {command}"] + argv[2:])


if __name__ == "__main__":
  run()
