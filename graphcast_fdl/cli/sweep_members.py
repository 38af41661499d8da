"""Expands `config:` + `sweep:` directives into one directive list per member.

Each member becomes the plain `--config` directives that reproduce it
(`set:path=value`, `fiddler:name(k=v)`), so a member is validated exactly like
a single run, prints as the flags a user could paste, and replays from its
`config.json`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any, Sequence

from graphcast_fdl import experiments
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl.experiments import sweeps


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a sweep."""

  name: str
  overrides: tuple[str, ...]  # The directives this member adds.
  directives: tuple[str, ...]  # Everything needed to build its config.


def expand(directives: Sequence[str]) -> list[Member]:
  """Members of the product of every `sweep:` directive."""
  directives = list(directives)
  if not directives or not directives[0].startswith(("config:", "config_file:")):
    raise UsageError(
        "a sweep starts with --config=config:NAME, then "
        "--config=sweep:NAME(...); sweeps: " + ", ".join(experiments.SWEEPS)
    )
  base, rest = directives[0], directives[1:]
  sweep_lists = [_call_sweep(d[len("sweep:") :]) for d in rest if d.startswith("sweep:")]
  others = [d for d in rest if not d.startswith("sweep:")]
  if not sweep_lists:
    raise UsageError("no --config=sweep:NAME given; sweeps: " + ", ".join(experiments.SWEEPS))
  members = []
  for index, overrides in enumerate(sweeps.product(*sweep_lists)):
    added = tuple(_directive(key, value) for key, value in overrides.items())
    members.append(
        Member(
            name=f"m{index:02d}_" + _slug(overrides),
            overrides=added,
            directives=(base, *added, *others),
        )
    )
  return members


def _call_sweep(expression: str) -> list[dict]:
  try:
    call = ast.parse(expression.strip(), mode="eval").body
  except SyntaxError as e:
    raise UsageError(f"--config=sweep:{expression}: not a call expression") from e
  name = call.func.id if isinstance(call, ast.Call) else getattr(call, "id", None)
  if name not in experiments.SWEEPS:
    raise UsageError(
        f"--config=sweep:{expression}: unknown sweep {name!r}; "
        f"choose from {', '.join(experiments.SWEEPS)}"
    )
  args, kwargs = [], {}
  if isinstance(call, ast.Call):
    try:
      args = [ast.literal_eval(a) for a in call.args]
      kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except ValueError as e:
      raise UsageError(f"--config=sweep:{expression}: arguments must be " "Python literals") from e
  try:
    return list(getattr(experiments, name)(*args, **kwargs))
  except (TypeError, ValueError) as e:
    raise UsageError(f"--config=sweep:{expression}: {e}") from e


def _directive(key: str, value: Any) -> str:
  if key.startswith("fiddler:"):
    kwargs = ",".join(f"{k}={v!r}" for k, v in value.items())
    return f"fiddler:{key[len('fiddler:'):]}({kwargs})"
  return f"set:{key}={value!r}"


def _slug(overrides: dict) -> str:
  parts = []
  for key, value in overrides.items():
    if key.startswith("fiddler:"):
      parts += [f"{k}={v}" for k, v in value.items()]
    else:
      parts.append(f"{key.split('.')[-1]}={value}")
  return re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(parts))[:100]
