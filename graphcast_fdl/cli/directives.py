"""Applies `--config` directives and explains, in one line, any that fail.

Directives are Fiddle's flag forms (config:, fiddler:, set:, config_file:),
resolved against the flat `graphcast_fdl.experiments` registry. Both the
`--config` flag of single runs and each member of a sweep go through here, so
they fail the same way.
"""

from __future__ import annotations

import ast
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
        + ", ".join(experiments.CONFIGS)
    )
  try:
    cfg = _apply(directives)
  except Exception as e:  # pylint: disable=broad-except
    failed, partial = _first_failing(directives)
    raise UsageError(_explain(failed, e, partial)) from e
  if not isinstance(cfg, fdl.Config):
    raise UsageError(f"--config must give an experiment config, got {type(cfg).__name__}")
  type_check.check(cfg)
  return cfg


def _apply(directives: Sequence[str]):
  """The config `directives` give, through Fiddle's own flag (public API)."""
  flag = fdl_flags.FiddleFlag(
      name="config",
      default=None,
      parser=flags.ArgumentParser(),
      serializer=None,
      help_string="",
      default_module=experiments,
  )
  flag.parse(list(directives))
  return flag.value


def _first_failing(directives: Sequence[str]) -> tuple[str, Any]:
  """(the first directive that fails, the config before it).

  Directives are applied to longer and longer prefixes: a failure is rare and
  a handful of directives cheap, and this needs no private Fiddle state.
  """
  partial = None
  for i, directive in enumerate(directives):
    try:
      partial = _apply(directives[: i + 1])
    except Exception:  # pylint: disable=broad-except
      return directive, partial
  return directives[-1], partial


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
      return (
          f"--config={directive}: unknown config {name!r}; "
          f"choose from {', '.join(experiments.CONFIGS)}"
      )
  if command == "fiddler":
    name = expression.split("(")[0]
    if name not in experiments.FIDDLERS:
      return (
          f"--config={directive}: unknown fiddler {name!r}; "
          f"choose from {', '.join(experiments.FIDDLERS)}"
      )
    fiddler = getattr(experiments, name)
    parameters = list(inspect.signature(fiddler).parameters.values())
    usage = f"{name}({', '.join(str(p) for p in parameters[1:])})"
    problem = _fiddler_arguments_problem(fiddler, expression) or _last(error)
    return f"--config={directive}: {problem}; usage: {usage}"
  if command == "set":
    path, has_value, value = expression.partition("=")
    if not has_value:
      return f"--config={directive}: set: needs path=value, e.g. " "set:model.latent_size=256"
    problem = explain_path(cfg, path) or _literal_problem(value, path)
    return f"--config={directive}: {problem or _last(error)}"
  if command == "config_file":
    if not os.path.exists(expression):
      return f"--config={directive}: config file not found: {expression}"
    return f"--config={directive}: not a Fiddle JSON config ({_last(error)})"
  return f"--config={directive}: {' / '.join(_chain(error))}"


def _literal_problem(text: str, name: str) -> str | None:
  """Why `text` is not a Python literal, in words (None if it is one)."""
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError:
    return (
        f"{text.strip()!r} is not a Python literal; write numbers as "
        "48 or 1e-3, strings in quotes ('float32'), or None"
    )
  return _node_problem(node, name)


def _node_problem(node: ast.AST, name: str) -> str | None:
  for sub in ast.walk(node):
    if isinstance(sub, ast.Name) and sub.id not in ("None", "True", "False"):
      return (
          f"{name}={sub.id} is not a Python literal: quote strings, "
          f"{name}='{sub.id}' (in the shell, wrap the whole flag in "
          "double quotes)"
      )
  try:
    ast.literal_eval(node)
  except ValueError:
    return (
        f"{name}={ast.unparse(node)} is not a Python literal (numbers, "
        "quoted strings, None, tuples)"
    )
  return None


def _fiddler_arguments_problem(fiddler, expression: str) -> str | None:
  """The first argument of a fiddler call that is no literal or of wrong type."""
  try:
    call = ast.parse(expression.strip(), mode="eval").body
  except SyntaxError:
    return None
  if not isinstance(call, ast.Call):
    return None
  signature = inspect.signature(fiddler)
  names = list(signature.parameters)[1:]
  given = list(zip(names, call.args)) + [(k.arg, k.value) for k in call.keywords]
  hints = type_check.function_hints(fiddler)
  for name, node in given:
    problem = _node_problem(node, name)
    if problem:
      return problem
    value = ast.literal_eval(node)
    hint = hints.get(name)
    if hint is not None and not type_check.matches(value, hint):
      return (
          f"{name}={value!r}: expected {type_check.describe(hint)}, " f"got {type(value).__name__}"
      )
  return None


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
      return f"{where} ({owner}) has no field {part!r}; valid fields: " f"{', '.join(names)}"
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
