"""Scoring a model against the evaluation split, with baselines.

For batches of evenly spread initial times of the evaluation split: roll the
model out to the lead time, score it, persistence and the climatology on the
same initial times and targets, optionally write the forecasts; then write
the scorecard. Plain functions of a predictor and frames, so tests and other
tools can call them without flags.
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import logging
import jax
import numpy as np

from graphcast_fdl import task as task_lib
from graphcast_fdl.evaluation import baselines
from graphcast_fdl.evaluation import forecast as forecast_lib
from graphcast_fdl.evaluation import scorecard as scorecard_lib
from graphcast_fdl.evaluation import windows
from graphcast_fdl.task import TaskConfig


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """How much to evaluate and what to write.

  Attributes:
    lead_steps: 6 h steps to roll out (40 = 10 days).
    num_init_times: initial times spread evenly over the split (None: all).
    batch_size: initial times rolled out together.
    chunk_steps: rollout steps per jitted call (bounds accelerator memory).
    forecast_format: "netcdf", "zarr" or None (do not write forecasts).
    model_name: the model's label in the scorecard.
  """

  lead_steps: int
  num_init_times: int | None = 8
  batch_size: int = 1
  chunk_steps: int | None = 8
  forecast_format: str | None = "netcdf"
  model_name: str = "graphcast"


def evaluate(
    predictor,
    params,
    task: TaskConfig,
    frames,
    climatology,
    options: EvalOptions,
    output_dir: str,
    metadata: dict | None = None,
) -> dict:
  """Runs the evaluation and writes its files; returns paths and a summary.

  Args:
    predictor: has `rollout(params, inputs, forcings, num_steps)`.
    params: its parameters.
    task: the model's task.
    frames: the evaluation split (`data.frames(...)`).
    climatology: `climatology.compute(...)` of the training split.
    options: see EvalOptions.
    output_dir: where scorecard files (and `forecasts/`) go.
    metadata: recorded in scorecard.json (checkpoint, config, ...).
  """
  indices = windows.init_indices(frames, task, options.lead_steps, options.num_init_times)
  rollout_fn = jax.jit(predictor.rollout, static_argnums=3)
  card = scorecard_lib.Scorecard(
      frames.lat,
      task.pressure_levels,
      [task_lib.TIME_STEP_HOURS * (t + 1) for t in range(options.lead_steps)],
  )
  forecast_dir = os.path.join(output_dir, "forecasts")
  written, start = [], time.time()
  chunks = [indices[i : i + options.batch_size] for i in range(0, len(indices), options.batch_size)]
  loaded = windows.load_batches(frames, task, chunks, options.lead_steps)
  for first, chunk, (batch, template, valid) in zip(
      range(0, len(indices), options.batch_size), chunks, loaded, strict=True
  ):
    init_times = frames.datetimes[chunk]
    predictions = forecast_lib.rollout(
        rollout_fn, params, task, batch, options.lead_steps, options.chunk_steps
    )
    truth = {n: np.asarray(batch.targets[n]) for n in task.target_variables}
    clim = baselines.climatology(climatology, task.target_variables, valid)
    card.add(options.model_name, predictions, truth, clim)
    card.add(
        "persistence",
        baselines.persistence(batch.inputs, task.target_variables, options.lead_steps),
        truth,
        clim,
    )
    card.add("climatology", clim, truth, clim)
    if options.forecast_format:
      ds = forecast_lib.to_dataset(predictions, template, valid, init_times)
      written += forecast_lib.write(ds, forecast_dir, options.forecast_format)
    logging.info(
        "Evaluated %d/%d initial times (%.1f s)",
        min(first + options.batch_size, len(indices)),
        len(indices),
        time.time() - start,
    )
  meta = dict(
      metadata or {},
      num_init_times=int(len(indices)),
      init_times=[str(t) for t in frames.datetimes[indices]],
      lead_hours=list(card.lead_hours),
      climatology={k: v for k, v in climatology.attrs.items() if k != "key"},
  )
  paths = card.write(output_dir, meta)
  paths["forecasts"] = sorted(set(written))
  return {"paths": paths, "seconds": time.time() - start, "summary": headline_summary(card)}


def headline_summary(card: scorecard_lib.Scorecard) -> dict:
  """{field: {model: rmse at the last lead}} for a one-look log line."""
  out = {}
  for row in card.records():
    if row["field"] and row["lead_hours"] == card.lead_hours[-1]:
      out.setdefault(row["field"], {})[row["model"]] = row["rmse"]
  return out
