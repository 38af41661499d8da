"""The OSError found in an exception chain, and stderr captured below Python."""

import errno
import os
import sys

from graphcast_fdl import system


def _wrapped(error: BaseException) -> RuntimeError:
  """`error` two levels down, as Orbax's and TensorStore's wrappers leave it."""
  try:
    try:
      raise error
    except OSError as e:
      raise ValueError("tensorstore: write failed") from e
  except ValueError:
    try:
      raise RuntimeError("save failed")  # Implicit context, not a cause.
    except RuntimeError as outer:
      return outer


def test_os_error_found_through_causes_and_contexts():
  disk_full = OSError(errno.ENOSPC, "No space left on device", "/ckpt/7")
  found = system.os_error_in_chain(_wrapped(disk_full))
  assert found is disk_full and found.filename == "/ckpt/7"


def test_os_error_filtered_by_errno_and_absent_without_one():
  read_only = OSError(errno.EROFS, "Read-only file system")
  assert system.os_error_in_chain(_wrapped(read_only), {errno.ENOSPC}) is None
  assert system.os_error_in_chain(_wrapped(read_only), {errno.EROFS}) is read_only
  assert system.os_error_in_chain(_wrapped(OSError("no errno"))) is None
  assert system.os_error_in_chain(None) is None


def test_os_error_search_ends_on_a_cyclic_chain():
  a, b = ValueError("a"), ValueError("b")
  a.__context__, b.__context__ = b, a
  assert system.os_error_in_chain(a) is None


def test_stderr_captured_drops_c_level_lines_and_replays_kept_ones(capfd):
  with system.stderr_captured(keep=lambda line: "keep" in line):
    os.write(2, b"libtpu: TPU_ACCELERATOR_TYPE not set\n")  # As C++ writes it.
    sys.stderr.write("keep: a real warning\n")
    os.write(2, b"drop this\nkeep this too\n")
  assert capfd.readouterr().err == "keep: a real warning\nkeep this too\n"


def test_stderr_captured_drops_everything_by_default_and_restores_fd(capfd):
  with system.stderr_captured():
    os.write(2, b"noise\n")
  os.write(2, b"after\n")
  assert capfd.readouterr().err == "after\n"
