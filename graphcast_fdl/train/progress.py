"""Progress lines with steps/s and the ETA of the phase and of the whole schedule."""

from __future__ import annotations

from typing import Sequence

from absl import logging
from clu import periodic_actions

from graphcast_fdl.task import format_seconds
from graphcast_fdl.train.schedule import Schedule

EXCLUDED = "compiling each phase's step, evaluation and checkpoints"


class StepPricer:
  """Seconds left in the schedule, from the measured rate and relative costs.

  The estimator prices each phase's step (`step_seconds`, one per phase);
  its absolute figure can be off by a constant factor, but the ratio between
  phases (a rollout of k steps costs about k single steps) holds. A measured
  interval gives seconds per estimated second; the steps left are priced
  with it, each at its own phase's cost. Without estimates, a step costs its
  rollout length.
  """

  def __init__(self, schedule: Schedule, step_seconds: Sequence[float] | None = None):
    self._spans = schedule.spans()
    costs = (
        list(step_seconds)
        if step_seconds is not None
        else [float(p.rollout_steps) for p in schedule.phases]
    )
    if len(costs) != len(self._spans) or min(costs) <= 0:
      raise ValueError(
          f"step_seconds: need one positive figure per phase " f"({len(self._spans)}), got {costs}"
      )
    self._costs = costs
    self.scale = None  # Measured seconds per estimated second.

  def cost(self, start: int, end: int) -> float:
    """Estimated seconds of global steps [start, end)."""
    total = 0.0
    for span, cost in zip(self._spans, self._costs):
      overlap = min(end, span.end) - max(start, span.start)
      total += max(overlap, 0) * cost
    return total

  def measure(self, start: int, end: int, seconds: float) -> None:
    """Steps [start, end) took `seconds`. An interval holding a phase's first
    step (which compiles) only counts while nothing better is known."""
    compiles = any(start <= s.start < end for s in self._spans)
    if end > start and seconds > 0 and (self.scale is None or not compiles):
      self.scale = seconds / self.cost(start, end)

  def seconds_left(self, step: int, end: int) -> float:
    return self.scale * self.cost(step, end)


class ScheduleProgress(periodic_actions.ReportProgress):
  """CLU's ReportProgress, also aware of phases.

  Call it after every step with the global step reached. Each report logs one
  line (phase, step within phase and overall, steps/s, both ETAs) and writes
  `steps_per_sec` and `uptime` scalars. The ETAs price the steps left at the
  measured rate, each later phase scaled by its estimated step time
  (`step_seconds`, one per phase, e.g. the estimator's), so a rollout phase
  ahead counts as slower; they leave out compiling, evaluation and
  checkpoints (the first report says so).
  """

  def __init__(
      self,
      schedule: Schedule,
      writer=None,
      every_steps: int = 50,
      step_seconds: Sequence[float] | None = None,
  ):
    super().__init__(
        num_train_steps=schedule.total_steps,
        writer=writer,
        every_steps=every_steps,
        every_secs=None,
        on_steps=[s.end for s in schedule.spans()],
    )
    self._schedule = schedule
    self._pricer = StepPricer(schedule, step_seconds)
    self._timed_before = 0.0
    self.last_message = ""

  def _apply(self, step: int, t: float):
    elapsed = max(t - self._previous_time, 1e-9)
    steps_per_sec = (step - self._previous_step) / elapsed
    # Time in `timed(...)` blocks (evaluation) is not step time.
    timed = sum(self._time_per_part.values())
    step_time = max(elapsed - (timed - self._timed_before), 1e-9)
    self._timed_before = timed
    first = self._pricer.scale is None
    self._pricer.measure(self._previous_step, step, step_time)
    span = self._schedule.span_at(step - 1)
    total = self._schedule.total_steps
    message = (
        f"step {step}/{total} | phase {span.phase.name} "
        f"({span.index + 1}/{len(self._schedule.phases)}, rollout "
        f"{span.phase.rollout_steps}) {step - span.start}/{span.phase.num_steps}"
        f" | {steps_per_sec:.2f} steps/s | phase ETA "
        f"{format_seconds(self._pricer.seconds_left(step, span.end))} | "
        f"total ETA {format_seconds(self._pricer.seconds_left(step, total))}"
    )
    if first:
      message += f" (steps only, excludes {EXCLUDED})"
    self.last_message = message
    logging.info("%s", message)
    if self._writer is not None:
      self._writer.write_scalars(step, {"steps_per_sec": steps_per_sec})
      self._writer.write_scalars(step, {"uptime": t - self._t0})
