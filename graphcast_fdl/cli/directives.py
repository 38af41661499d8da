"""Applies `--config` directives and explains, in one line, any that fail.

Directives are Fiddle's flag forms (config:, fiddler:, set:, config_file:),
resolved against the flat `graphcast_fdl.experiments` registry. Both the
`--config` flag of single runs and each member of a sweep go through here, so
they fail the same way.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Sequence

from absl import flags
import fiddle as fdl
from fiddle import absl_flags as fdl_flags

from graphcast_fdl import experiments
from graphcast_fdl.cli import type_check
from graphcast_fdl.cli.errors import UsageError


def config_from_directives(directives: Sequence[str]) -> fdl.Config:
  """The experiment config the directives describe, type-checked."""
  if not directives:
    raise UsageError(
        "--config is required, e.g. --config=config:demo; configs: "
        + ", ".join(experiments.CONFIGS))
  flag = fdl_flags.FiddleFlag(
      name="config", default=None, parser=flags.ArgumentParser(),
      serializer=None, help_string="", default_module=experiments)
  flag.parse(list(directives))
  try:
    cfg = flag.value
  except Exception as e:  # pylint: disable=broad-except
    remaining = len(flag._remaining_directives)  # pylint: disable=protected-access
    failed = directives[len(directives) - remaining - 1]
    partial = flag._value if hasattr(flag, "_value") else None  # pylint: disable=protected-access
    raise UsageError(_explain(failed, e, partial)) from e
  if not isinstance(cfg, fdl.Config):
    raise UsageError(
        f"--config must give an experiment config, got {type(cfg).__name__}")
  type_check.check(cfg)
  return cfg


def build(cfg: fdl.Config):
  """Builds the Experiment; a field that does not fit is a UsageError."""
  try:
    return fdl.build(cfg)
  except (ValueError, TypeError) as e:
    raise UsageError(str(e).splitlines()[0]) from e


def _explain(directive: str, error: Exception, cfg: Any) -> str:
  """One line saying which directive failed and what would have worked."""
  command, _, expression = directive.partition(":")
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
    parameters = list(inspect.signature(getattr(experiments, name)).parameters.values())
    usage = f"{name}({', '.join(str(p) for p in parameters[1:])})"
    return f"--config={directive}: {_last(error)}; usage: {usage}"
  if command == "set":
    path = expression.split("=", 1)[0]
    return f"--config={directive}: {explain_path(cfg, path) or _last(error)}"
  if command == "config_file":
    if not os.path.exists(expression):
      return f"--config={directive}: config file not found: {expression}"
    return f"--config={directive}: not a Fiddle JSON config ({_last(error)})"
  return f"--config={directive}: {' / '.join(_chain(error))}"


def explain_path(cfg: Any, path: str) -> str | None:
  """Walks `path` through `cfg`; names the first step that does not exist."""
  node, walked = cfg, []
  for part in path.replace("[", ".[").split("."):
    if not part:
      continue
    if part.startswith("["):
      try:
        node = node[int(part.strip("[]"))]
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
  chain = _chain(error)
  return chain[-1] if chain else type(error).__name__
