"""Progress lines with steps/s and the ETA of the phase and of the whole schedule."""

from __future__ import annotations

from absl import logging
from clu import periodic_actions

from graphcast_fdl.task import format_seconds
from graphcast_fdl.train.schedule import Schedule


class ScheduleProgress(periodic_actions.ReportProgress):
  """CLU's ReportProgress, also aware of phases.

  Call it after every step with the global step reached. Each report logs one
  line (phase, step within phase and overall, steps/s, both ETAs) and writes
  `steps_per_sec` and `uptime` scalars. The ETAs assume the current rate holds;
  a later phase with longer rollouts is slower, so the schedule ETA is a lower
  bound while annealing lies ahead.
  """

  def __init__(self, schedule: Schedule, writer=None, every_steps: int = 50):
    super().__init__(num_train_steps=schedule.total_steps, writer=writer,
                     every_steps=every_steps, every_secs=None,
                     on_steps=[s.end for s in schedule.spans()])
    self._schedule = schedule
    self.last_message = ""

  def _apply(self, step: int, t: float):
    steps_per_sec = (step - self._previous_step) / max(
        t - self._previous_time, 1e-9)
    span = self._schedule.span_at(step - 1)
    total = self._schedule.total_steps
    message = (
        f"step {step}/{total} | phase {span.phase.name} "
        f"({span.index + 1}/{len(self._schedule.phases)}, rollout "
        f"{span.phase.rollout_steps}) {step - span.start}/{span.phase.num_steps}"
        f" | {steps_per_sec:.2f} steps/s | phase ETA "
        f"{format_seconds((span.end - step) / steps_per_sec)} | total ETA "
        f"{format_seconds((total - step) / steps_per_sec)}")
    self.last_message = message
    logging.info("%s", message)
    if self._writer is not None:
      self._writer.write_scalars(step, {"steps_per_sec": steps_per_sec})
      self._writer.write_scalars(step, {"uptime": t - self._t0})
