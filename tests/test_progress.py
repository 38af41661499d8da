"""ETAs price the steps left phase by phase, and say what they leave out."""

from absl import logging as absl_logging
import pytest

from graphcast_fdl.train import progress
from graphcast_fdl.train import schedule as schedule_lib


def _schedule():
  # 300 single steps, then 10 steps each of rollouts 2, 3 and 4.
  return schedule_lib.Schedule(
      schedule_lib.single_step(300, warmup_steps=10)
      + schedule_lib.annealing(range(2, 5), steps_each=10)
  )


def test_later_phases_priced_by_their_step_cost():
  pricer = progress.StepPricer(_schedule(), step_seconds=[0.1, 0.2, 0.3, 0.4])
  # Measured 0.5 s per step where 0.1 s was estimated: everything x5.
  pricer.measure(200, 300, 50.0)
  assert pricer.scale == pytest.approx(5.0)
  assert pricer.seconds_left(300, 310) == pytest.approx(10 * 0.2 * 5)
  assert pricer.seconds_left(300, 330) == pytest.approx(10 * (0.2 + 0.3 + 0.4) * 5)
  # The 1-step rate alone would have said 30 steps x 0.5 s = 15 s.
  assert pricer.seconds_left(300, 330) == pytest.approx(45.0)


def test_rollout_length_is_the_cost_without_estimates():
  pricer = progress.StepPricer(_schedule())
  pricer.measure(0, 100, 20.0)
  assert pricer.seconds_left(300, 330) == pytest.approx(0.2 * (20 + 30 + 40))


def test_interval_that_starts_a_phase_does_not_replace_a_clean_rate():
  pricer = progress.StepPricer(_schedule(), step_seconds=[1.0, 2.0, 3.0, 4.0])
  pricer.measure(250, 300, 50.0)
  # Steps 300..305 include compiling rollout_2's step: 60 s for 10 units.
  pricer.measure(300, 305, 60.0)
  assert pricer.scale == pytest.approx(1.0)
  pricer.measure(305, 310, 20.0)  # A clean rollout_2 interval.
  assert pricer.scale == pytest.approx(2.0)


def test_bad_estimates_name_the_field():
  with pytest.raises(ValueError, match="step_seconds"):
    progress.StepPricer(_schedule(), step_seconds=[1.0, 2.0])


def test_report_lines(monkeypatch):
  lines = []
  monkeypatch.setattr(absl_logging, "info", lambda fmt, *args: lines.append(fmt % args))
  report = progress.ScheduleProgress(
      _schedule(), every_steps=100, step_seconds=[0.1, 0.2, 0.3, 0.4]
  )
  for step in range(1, 201):  # 0.5 s a step: five times the estimate.
    report(step, t=0.5 * step)
  assert lines[0].startswith(
      "step 100/330 | phase single_step (1/4, rollout 1)"
      " 100/300 | 2.00 steps/s | phase ETA 100 s | "
      "total ETA 2.4 min (steps only, excludes compiling"
  )
  assert lines[1].endswith("| phase ETA 50 s | total ETA 95 s")
