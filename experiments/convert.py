"""Turn library dataclass instances into Fiddle configs.

The library builds schedules and configs as plain dataclasses (testable without
Fiddle); experiments convert them so every nested field stays overridable from
the command line (`set:schedule.phases[0].num_steps=...`).
"""

import dataclasses
from typing import Any

import fiddle as fdl


def as_config(value: Any) -> Any:
  """Recursively converts dataclass instances into `fdl.Config`s."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    kwargs = {}
    for field in dataclasses.fields(value):
      if not field.init:
        continue
      field_value = getattr(value, field.name)
      if _is_default(field, field_value):
        continue
      kwargs[field.name] = as_config(field_value)
    return fdl.Config(type(value), **kwargs)
  if isinstance(value, (list, tuple)):
    return (
        [as_config(v) for v in value]
        if isinstance(value, list)
        else tuple(as_config(v) for v in value)
    )
  return value


def _is_default(field: dataclasses.Field, value: Any) -> bool:
  """Fields left at a plain default stay unset, so configs print compactly.

  Fields with a default_factory (nested configs) stay explicit so that they
  can be edited by path.
  """
  return (
      field.default is not dataclasses.MISSING
      and value == field.default
      and type(value) is type(field.default)
  )
