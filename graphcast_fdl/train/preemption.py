"""Preemption: SIGTERM/SIGINT become a checkpoint and an exit, not a loss.

Cluster schedulers send SIGTERM before taking the machine; the loop checks
`StopSignal.any_process()` after each step, saves, and raises `Preempted`.
"""

from __future__ import annotations

import signal

from absl import logging
import jax
import numpy as np


class Preempted(SystemExit):
  """SIGTERM/SIGINT arrived; the state was saved. Exit code 128 + signal."""


class StopSignal:
  """Records SIGTERM/SIGINT instead of dying, so the loop can checkpoint first."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[signum] = signal.signal(signum, self._handle)
      except ValueError:  # Not the main thread: leave signals alone.
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning("Received signal %d: saving a checkpoint after this step", signum)
    self.signum = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def any_process(self) -> int | None:
    """The signal if any process got one (all processes agree on stopping)."""
    local = self.signum or 0
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      local = int(np.max(multihost_utils.process_allgather(np.int32(local))))
    return local or None
