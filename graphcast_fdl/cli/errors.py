"""The error types commands raise for bad input, and the one-line failure guard.

A command that fails for a reason its user can fix (config, data, disk,
permissions, a diverged or busy run) prints one line on stderr naming the
cause and exits non-zero; `--debug` prints the whole traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback

from absl import flags
from absl import logging

from graphcast_fdl import system

DEBUG = flags.DEFINE_bool("debug", False, "On a failure, print the full traceback (not one line).")


class UsageError(Exception):
  """Bad user input; `main` prints it as one line and exits with code 2."""


# Exceptions of deeper layers that mean "the user can fix this", by module, so
# that this module does not import them (print_config must not load JAX).
_EXPECTED = {
    "graphcast_fdl.data.frames": ("DataError",),
    "graphcast_fdl.train.trainer": ("NonFiniteError",),
    "graphcast_fdl.train.checkpointing": ("CheckpointSaveError",),
    "graphcast_fdl.train.workdir": ("WorkdirBusy",),
    "graphcast_fdl.train.sharding": ("MeshError",),
    "graphcast_fdl.train.experiment": ("ExperimentError",),
    "graphcast_fdl.checkpoints.npz_format": ("CheckpointError",),
    "graphcast_fdl.checkpoints.integrity": ("CheckpointDamaged", "CheckpointMismatch"),
}

_OS_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
}


def _expected_types() -> tuple[type, ...]:
  types = []
  for module_name, names in _EXPECTED.items():
    module = sys.modules.get(module_name)
    if module is not None:
      types += [getattr(module, n) for n in names if hasattr(module, n)]
  return tuple(types)


def one_line(error: BaseException) -> str | None:
  """The one-line message for a failure a user can cause, else None (a bug)."""
  if isinstance(error, UsageError):
    return str(error)
  os_error = system.os_error_in_chain(error, _OS_CAUSES)
  if isinstance(error, _expected_types()):
    text = str(error).strip().splitlines()[0] if str(error).strip() else (type(error).__name__)
    if os_error is not None and _OS_CAUSES[os_error.errno] not in text:
      text += f" [{_OS_CAUSES[os_error.errno]}]"
    return text
  if os_error is not None:
    where = os_error.filename or ""
    return f"{_OS_CAUSES[os_error.errno]}: {where}".rstrip(": ")
  if isinstance(error, FileNotFoundError) and str(error).strip():
    return str(error).strip().splitlines()[0]  # Ours: the message names it.
  return None


def exit_on_failure(fn, *args, **kwargs):
  """Runs `fn`; a failure ends the process at once with one line on stderr.

  Usage errors exit 2, other failures 1. The process ends with `os._exit`
  after flushing, because a failed Orbax save leaves non-daemon threads
  waiting on a barrier for minutes. Bugs (unexpected exceptions) print
  their traceback; `--debug` prints it for every failure.
  """
  try:
    return fn(*args, **kwargs)
  except SystemExit:
    raise
  except BaseException as e:  # pylint: disable=broad-except
    message = one_line(e)
    debug = DEBUG.value if flags.FLAGS.is_parsed() else False
    if message is None or debug:
      traceback.print_exc()
    if message is not None:
      print(f"error: {message}", file=sys.stderr)
    code = 2 if isinstance(e, UsageError) else 1
    _exit(code)


def _exit(code: int) -> None:
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access
