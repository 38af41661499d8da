"""Whether weights trained under one model and task compute the same function
under another.

Shapes alone let wrong weights through: the released GraphCast weights were
trained with a grid->mesh radius fraction of 0.5999912857713345 and mesh->grid
edge features divided by 0.6180338738074472; with 0.6 and no division the
same weights see edge features about 30x apart. Fields that only change how
the same function is computed (precision, recomputation, edge blocks) may
differ.
"""

from __future__ import annotations

import math

from graphcast_fdl.checkpoints import npz_format
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.task import TaskConfig

# ModelConfig fields that change the function the weights compute: those the
# published format records, and whether the grid has rows at the poles.
MODEL_FUNCTION_FIELDS = npz_format.MODEL_FIELDS + ("include_poles",)


def _same(a, b) -> bool:
  if isinstance(a, float) and isinstance(b, float):
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
  return a == b


def differences(
    trained_model: ModelConfig,
    trained_task: TaskConfig,
    model: ModelConfig,
    task: TaskConfig,
    model_fields=MODEL_FUNCTION_FIELDS,
) -> list[str]:
  """'model.FIELD: A (checkpoint) vs B (experiment)' per field that differs."""
  found = []
  for prefix, fields, ours, theirs in (
      ("model", model_fields, model, trained_model),
      ("task", npz_format.TASK_FIELDS, task, trained_task),
  ):
    for field in fields:
      a, b = getattr(theirs, field), getattr(ours, field)
      if not _same(a, b):
        found.append(f"{prefix}.{field}: {a!r} (checkpoint) vs {b!r} " "(experiment)")
  return found


def npz_differences(path: str, model: ModelConfig, task: TaskConfig) -> list[str]:
  """`differences` for a published `.npz`, over the fields it records."""
  checkpoint = npz_format.load(path)
  return differences(
      checkpoint.model, checkpoint.task, model, task, model_fields=npz_format.MODEL_FIELDS
  )
