"""What a command logs: by default what a user reads; the rest at -v 1.

By default (`--verbosity=0`) our INFO lines, warnings and errors are shown,
and these are held back: JAX's probe for a TPU backend, TFDS's bookkeeping
lines and progress bars, TensorFlow's C++ notices (oneDNN), Orbax's INFO
lines, CLU's parameter table and the metric writer's lines beyond the
losses. `--verbosity=1` (or `-v 1`) shows everything.
"""

from __future__ import annotations

import os
import re
import sys

from absl import logging

from graphcast_fdl import system

# Set before TensorFlow, JAX or TFDS are imported, so only from the argv.
_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "1",  # TensorFlow's C++ INFO (the oneDNN notice).
    "TQDM_DISABLE": "1",  # TFDS's progress bars while it builds a dataset.
}
_VERBOSITY_ARG = re.compile(r"^--?(?:verbosity|v)(?:=|$)")
# (path fragment of the logging module, message prefixes kept at INFO).
_HELD_BACK = (
    (f"{os.sep}jax{os.sep}", ()),
    (f"{os.sep}orbax{os.sep}", ()),
    (f"{os.sep}tensorflow_datasets{os.sep}", ("Generating dataset",)),
    (f"{os.sep}parameter_overview.py", ()),
)
# TensorFlow 2.21's C++ start-up notices ignore TF_CPP_MIN_LOG_LEVEL.
_TF_NOTICES = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
)
_WRITER = f"{os.sep}metric_writers{os.sep}logging_writer.py"
_KEPT_SCALAR = re.compile(r"(^|/)loss$")


def verbose(argv: list[str]) -> bool:
  """Whether the command line asks for more than the default log."""
  for i, arg in enumerate(argv):
    if _VERBOSITY_ARG.match(arg):
      value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "0")
      try:
        return int(value) >= 1
      except ValueError:
        return False
  return False


def quiet_environment(argv: list[str]) -> None:
  """Quiets the libraries' own start-up output, unless asked for."""
  if not verbose(argv):
    for name, value in _QUIET_ENV.items():
      os.environ.setdefault(name, value)


def _not_a_tf_notice(line: str) -> bool:
  return not any(n in line for n in _TF_NOTICES)


def import_tensorflow_quietly(argv: list[str]) -> None:
  """Imports TensorFlow (which CLU's writers import) without its notices."""
  if verbose(argv) or "tensorflow" in sys.modules:
    return
  with system.stderr_captured(keep=_not_a_tf_notice):
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401


def _losses_only(message: str) -> str | None:
  """`k=v, k=v` of a metric line cut to the losses; None when none is left."""
  kept = [
      item for item in message.split(", ") if _KEPT_SCALAR.search(item.split("=", 1)[0].strip())
  ]
  return ", ".join(kept) if kept else None


class UserLogFilter(logging.logging.Filter):
  """Holds back library INFO lines below `--verbosity=1` (see module doc)."""

  def filter(self, record) -> bool:
    if record.levelno > logging.logging.INFO or logging.get_verbosity() >= 1:
      return True
    path = record.pathname
    for fragment, kept_prefixes in _HELD_BACK:
      if fragment in path:
        return str(record.msg).startswith(kept_prefixes)
    if path.endswith(_WRITER):
      if str(record.msg).startswith("[Hyperparameters]"):
        return True  # The parameter count, one short line.
      if record.msg != "[%d]%s %s" or len(record.args) != 3:
        return False  # Raw tensors, images, histograms.
      step, collection, values = record.args
      values = _losses_only(values)
      if values is None:
        return False
      record.args = (step, collection, values)
    return True


def install() -> None:
  """Puts the filter on absl's handler, which every library's log reaches."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, UserLogFilter) for f in handler.filters):
    handler.addFilter(UserLogFilter())
