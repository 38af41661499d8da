"""Training phases and schedules as plain data, plus helpers that compose them.

A schedule is a list of phases run in order. Step numbers are global across
phases, so a restart needs nothing but the global step to know which phase,
rollout length and learning rate it is in.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.config import RematConfig

LR_DECAYS = ("constant", "cosine", "linear")


@dataclasses.dataclass(frozen=True)
class LearningRate:
  """Linear warm-up from `init_value` to `peak`, then `decay` to `end_value`.

  The schedule counts from the first step of its phase.
  """

  peak: float = 1e-3
  warmup_steps: int = 0
  decay: str = "constant"
  init_value: float = 0.0
  end_value: float = 0.0

  def __post_init__(self):
    if self.decay not in LR_DECAYS:
      raise ValueError(f"learning_rate.decay={self.decay!r}: must be one of {LR_DECAYS}")
    if self.warmup_steps < 0:
      raise ValueError(f"learning_rate.warmup_steps={self.warmup_steps}: must be >= 0")
    for name in ("peak", "init_value", "end_value"):
      if getattr(self, name) < 0:
        raise ValueError(f"learning_rate.{name}={getattr(self, name)}: must be >= 0")


@dataclasses.dataclass(frozen=True)
class Phase:
  """One stretch of training with a fixed rollout length.

  Attributes:
    name: unique within the schedule; used in logs and checkpoints.
    num_steps: optimiser steps in this phase.
    rollout_steps: autoregressive steps in the loss (1 = single-step).
    learning_rate: schedule, counted from this phase's first step.
    data: a different data source for this phase (e.g. HRES analyses for the
      operational fine-tune); None uses the experiment's.
    remat: per-phase activation recomputation (long rollouts need more).
    precision: per-phase compute precision override.
    eval_every_steps: evaluation cadence in this phase (None: experiment default).
    spatial: devices sharing each example in this phase (None: the
      experiment's `mesh.spatial`). Long rollouts may need their example
      split where 1-step phases run faster unsplit; the trainer moves the
      training state to the phase's mesh at its start.
  """

  name: str
  num_steps: int
  rollout_steps: int = 1
  learning_rate: LearningRate = dataclasses.field(default_factory=LearningRate)
  data: DataConfig | None = None
  remat: RematConfig | None = None
  precision: str | None = None
  eval_every_steps: int | None = None
  spatial: int | None = None

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"phase {self.name!r}: num_steps={self.num_steps} must be >= 1")
    if self.rollout_steps < 1:
      raise ValueError(f"phase {self.name!r}: rollout_steps={self.rollout_steps} must be >= 1")
    if self.eval_every_steps is not None and self.eval_every_steps < 0:
      raise ValueError(
          f"phase {self.name!r}: eval_every_steps=" f"{self.eval_every_steps} must be >= 0 or None"
      )
    if self.spatial is not None and (
        isinstance(self.spatial, bool) or not isinstance(self.spatial, int) or self.spatial < 1
    ):
      raise ValueError(
          f"phase {self.name!r}: spatial={self.spatial!r} must be a whole number >= 1 or None"
      )


@dataclasses.dataclass(frozen=True)
class PhaseSpan:
  """A phase placed on the global step axis: steps [start, end)."""

  index: int
  phase: Phase
  start: int

  @property
  def end(self) -> int:
    return self.start + self.phase.num_steps


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Phases run in order; `spans()` gives their global step ranges."""

  phases: Sequence[Phase] = ()

  def __post_init__(self):
    if not self.phases:
      raise ValueError("schedule.phases: a schedule needs at least one phase")
    names = [p.name for p in self.phases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      raise ValueError(f"schedule.phases: duplicate phase names {duplicates}")

  @property
  def total_steps(self) -> int:
    return sum(p.num_steps for p in self.phases)

  @property
  def max_rollout_steps(self) -> int:
    return max(p.rollout_steps for p in self.phases)

  def spans(self) -> list[PhaseSpan]:
    spans, start = [], 0
    for i, phase in enumerate(self.phases):
      spans.append(PhaseSpan(i, phase, start))
      start += phase.num_steps
    return spans

  def span_at(self, global_step: int) -> PhaseSpan | None:
    """The phase that runs `global_step`, or None once the schedule is done."""
    for span in self.spans():
      if span.start <= global_step < span.end:
        return span
    return None


def single_step(
    num_steps: int = 300_000,
    warmup_steps: int = 1_000,
    peak_lr: float = 1e-3,
    name: str = "single_step",
) -> list[Phase]:
  """The published pre-training: warm-up to `peak_lr`, half-cosine to 0."""
  return [
      Phase(
          name=name,
          num_steps=num_steps,
          rollout_steps=1,
          learning_rate=LearningRate(
              peak=peak_lr, warmup_steps=warmup_steps, decay="cosine", end_value=0.0
          ),
      )
  ]


def finetune(
    num_steps: int = 30_000,
    rollout_steps: int = 1,
    lr: float = 3e-7,
    data: DataConfig | None = None,
    name: str = "finetune",
) -> list[Phase]:
  """A constant-LR phase, optionally on another source (e.g. HRES-fc0)."""
  return [
      Phase(
          name=name,
          num_steps=num_steps,
          rollout_steps=rollout_steps,
          learning_rate=LearningRate(peak=lr, decay="constant"),
          data=data,
      )
  ]


def annealing(
    rollouts: Iterable[int] = range(2, 13),
    steps_each: int = 1_000,
    lr: float = 3e-7,
    name: str = "rollout",
) -> list[Phase]:
  """The published autoregressive fine-tune: one phase per rollout length."""
  return [
      Phase(
          name=f"{name}_{k}",
          num_steps=steps_each,
          rollout_steps=k,
          learning_rate=LearningRate(peak=lr, decay="constant"),
      )
      for k in rollouts
  ]


def published(operational: bool = False, finetune_data: DataConfig | None = None) -> Schedule:
  """GraphCast's schedule; `operational` adds the 30k-step 1-step fine-tune."""
  phases = single_step()
  if operational:
    phases += finetune(num_steps=30_000, lr=3e-7, data=finetune_data, name="finetune_hres")
  return Schedule(phases=phases + annealing())
