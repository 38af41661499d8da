"""Operating-system plumbing every layer needs, written once.

Two jobs that several layers met separately: finding the OSError (disk full,
read-only file system, ...) buried in an exception chain, because Orbax,
TensorStore and friends wrap it in their own errors and a user must still
read "no space left on device"; and capturing file descriptor 2, because
libtpu and TensorFlow write their start-up notices from C++, below
`sys.stderr`. No JAX here: the commands use it before JAX is imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator


def os_error_in_chain(
    error: BaseException | None, errnos: Collection[int] | None = None
) -> OSError | None:
  """The first OSError with an errno (one of `errnos`, when given) found by
  following `error`'s causes and contexts; None when there is none."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno and (errnos is None or error.errno in errnos):
      return error
    error = error.__cause__ or error.__context__
  return None


@contextlib.contextmanager
def stderr_captured(keep: Callable[[str], bool] = lambda line: False) -> Iterator[None]:
  """Captures file descriptor 2 (C++ output too) for the block, then writes
  back the lines `keep` accepts (by default none)."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured.read().decode(errors="replace").splitlines(True):
        if keep(line):
          sys.stderr.write(line)
      sys.stderr.flush()
