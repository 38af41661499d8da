"""Checks every value in an experiment config against its field's type hint.

Fiddle accepts any value for any argument; a `set:model.latent_size='big'`
would otherwise fail deep inside JAX. This walks the config and names the
first field whose value has the wrong type.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

import fiddle as fdl

from graphcast_fdl.cli.errors import UsageError


def check(cfg: fdl.Buildable, path: str = "") -> None:
  """Raises UsageError naming the first field whose value has the wrong type."""
  hints = _hints(cfg.__fn_or_cls__)
  for name, value in cfg.__arguments__.items():
    field_path = f"{path}.{name}" if path else name
    hint = hints.get(name)
    if hint is not None and not _matches(value, hint):
      raise UsageError(
          f"{field_path}={value!r}: expected {_describe(hint)}, " f"got {type(value).__name__}"
      )
    for sub_path, sub in _children(field_path, value):
      check(sub, sub_path)


def _children(path: str, value: Any):
  if isinstance(value, fdl.Buildable):
    yield path, value
  elif isinstance(value, (list, tuple)):
    for i, item in enumerate(value):
      if isinstance(item, fdl.Buildable):
        yield f"{path}[{i}]", item


@functools.lru_cache(maxsize=None)
def _hints(fn_or_cls) -> dict[str, Any]:
  if not dataclasses.is_dataclass(fn_or_cls):
    return {}
  try:
    return typing.get_type_hints(fn_or_cls)
  except Exception:  # pylint: disable=broad-except
    return {}


def function_hints(fn) -> dict[str, Any]:
  """Type hints of a function's parameters ({} where they do not resolve)."""
  try:
    return typing.get_type_hints(fn)
  except Exception:  # pylint: disable=broad-except
    return {}


def matches(value: Any, hint: Any) -> bool:
  """Whether a plain value fits a type hint (as `check` decides)."""
  return _matches(value, hint)


def describe(hint: Any) -> str:
  return _describe(hint)


def _matches(value: Any, hint: Any) -> bool:
  if hint is Any:
    return True
  if isinstance(value, fdl.Buildable):
    target = value.__fn_or_cls__
    classes = [h for h in _alternatives(hint) if isinstance(h, type)]
    return not classes or any(isinstance(target, type) and issubclass(target, c) for c in classes)
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    return any(_matches(value, h) for h in typing.get_args(hint))
  if hint is type(None):
    return value is None
  if hint is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if hint in (str, bool):
    return isinstance(value, hint)
  if (
      origin in (tuple, list, typing.Sequence)
      or origin is not None
      and getattr(origin, "__name__", "") == "Sequence"
  ):
    if not isinstance(value, (list, tuple)):
      return False
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    return not args or all(_matches(v, args[0]) for v in value)
  if isinstance(hint, type):
    return isinstance(value, hint)
  return True


def _alternatives(hint):
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    return typing.get_args(hint)
  return (hint,)


def _describe(hint: Any) -> str:
  if isinstance(hint, type):
    return hint.__name__
  return str(hint).replace("typing.", "")
