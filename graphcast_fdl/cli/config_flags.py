"""The `--config` and `--workdir` flags shared by every command.

`--config` is Fiddle's flag (config:, fiddler:, set:, config_file:) resolved
against the flat `graphcast_fdl.experiments` registry. Whatever goes wrong in
it becomes a one-line `UsageError` naming the directive, path or field at
fault, instead of a deep traceback.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from absl import flags
import fiddle as fdl
from fiddle import absl_flags as fdl_flags
from fiddle import printing
from fiddle.experimental import serialization

from graphcast_fdl import experiments
from graphcast_fdl.cli import type_check
from graphcast_fdl.cli.errors import UsageError

CONFIG = fdl_flags.DEFINE_fiddle_config(
    "config", default_module=experiments,
    help_string=(
        "Experiment: config:NAME, fiddler:NAME(args), set:path=value, "
        f"config_file:PATH. Configs: {', '.join(experiments.CONFIGS)}; "
        f"fiddlers: {', '.join(experiments.FIDDLERS)}."))
WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: config, checkpoints, metrics.")


def _directives() -> list[str]:
  """Every --config value given, in order."""
  flat = []
  for argument in CONFIG.present and flags.FLAGS["config"].all_arguments or []:
    flat.extend([argument] if isinstance(argument, str) else argument)
  return flat


def experiment_config() -> fdl.Config:
  """The un-built experiment config from the `--config` flags."""
  directives = _directives()
  if not directives:
    raise UsageError(
        "--config is required, e.g. --config=config:demo; configs: "
        + ", ".join(experiments.CONFIGS))
  try:
    cfg = CONFIG.value
  except Exception as e:  # pylint: disable=broad-except
    remaining = len(flags.FLAGS["config"]._remaining_directives)  # pylint: disable=protected-access
    failed = directives[len(directives) - remaining - 1]
    raise UsageError(_explain(failed, e)) from e
  if not isinstance(cfg, fdl.Config):
    raise UsageError(f"--config must give an experiment config, got {type(cfg).__name__}")
  type_check.check(cfg)
  return cfg


def build_experiment(cfg: fdl.Config | None = None):
  """Builds the Experiment; a field that does not fit is a UsageError."""
  cfg = experiment_config() if cfg is None else cfg
  try:
    return fdl.build(cfg)
  except (ValueError, TypeError) as e:
    raise UsageError(str(e).splitlines()[0]) from e


def require_workdir() -> str:
  if not WORKDIR.value:
    raise UsageError("--workdir is required for this command")
  return WORKDIR.value


def write_config_files(cfg: fdl.Config, workdir: str) -> None:
  """config.json (Fiddle JSON, replayable) and config.txt (one field a line)."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(serialization.dump_json(cfg, indent=2))
  with open(os.path.join(workdir, "config.txt"), "w") as f:
    f.write(flattened(cfg) + "\n")


def flattened(cfg: fdl.Config) -> str:
  return printing.as_str_flattened(cfg)


def _explain(directive: str, error: Exception) -> str:
  """One line saying which directive failed and what would have worked."""
  command, _, expression = directive.partition(":")
  messages = " / ".join(_chain(error))
  if command == "config":
    name = expression.split("(")[0]
    if name not in experiments.CONFIGS:
      return (f"--config={directive}: unknown config {name!r}; "
              f"choose from {', '.join(experiments.CONFIGS)}")
  if command == "fiddler":
    name = expression.split("(")[0]
    if name not in experiments.FIDDLERS:
      return (f"--config={directive}: unknown fiddler {name!r}; "
              f"choose from {', '.join(experiments.FIDDLERS)}")
    fiddler = getattr(experiments, name)
    signature = str(inspect.signature(fiddler)).replace("(cfg: fiddle._src.config.Config, ", "(")
    return f"--config={directive}: {_last(error)}; usage: {name}{signature}"
  if command == "set":
    path = expression.split("=", 1)[0]
    return f"--config={directive}: {_explain_path(path) or messages}"
  if command == "config_file":
    if not os.path.exists(expression):
      return f"--config={directive}: config file not found: {expression}"
    return f"--config={directive}: not a Fiddle JSON config ({_last(error)})"
  return f"--config={directive}: {messages}"


def _explain_path(path: str) -> str | None:
  """Walks `path` through the config so far; names the first bad step."""
  cfg = flags.FLAGS["config"]._value  # pylint: disable=protected-access
  node: Any = cfg
  walked = []
  for part in path.replace("[", ".[").split("."):
    if not part:
      continue
    if part.startswith("["):
      index = part.strip("[]")
      try:
        node = node[int(index)]
      except (ValueError, IndexError, TypeError):
        size = len(node) if isinstance(node, (list, tuple)) else "?"
        return f"{'.'.join(walked)}{part}: index out of range (length {size})"
      walked[-1] += part
      continue
    if not isinstance(node, fdl.Buildable):
      return f"{'.'.join(walked)} is a value, it has no field {part!r}"
    names = list(node.__signature_info__.parameters)
    if part not in names:
      owner = getattr(node.__fn_or_cls__, "__name__", "config")
      where = ".".join(walked) or "the experiment"
      return (f"{where} ({owner}) has no field {part!r}; valid fields: "
              f"{', '.join(names)}")
    node = getattr(node, part, None)
    walked.append(part)
  return None


def _chain(error: BaseException) -> list[str]:
  messages = []
  while error is not None:
    text = str(error).strip().splitlines()
    if text and text[0] not in messages:
      messages.append(text[0])
    error = error.__cause__ or error.__context__
  return messages


def _last(error: BaseException) -> str:
  return _chain(error)[-1] if _chain(error) else type(error).__name__
