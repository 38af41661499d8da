"""One writer per workdir, and the workdir's memory of the run it holds.

The lock is `fcntl.flock` on `<workdir>/train.lock`: the kernel drops it when
its process ends, however it ends (kill -9 included), so a crashed run never
leaves it stuck. The file also records who holds it, for the message a second
trainer stops with. Only process 0 of a multi-process run takes it (all of
them write into one shared workdir).

A workdir also remembers its config (`config.json`, `config.txt`): a rerun
with another config stops before writing anything unless told to continue,
and a folder that holds files but no run is never written into.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket

LOCK_FILE = "train.lock"
CONFIG_JSON = "config.json"
CONFIG_TXT = "config.txt"
RESULT_JSON = "result.json"
HISTORY_SUBDIR = "history"

_held: dict[str, list] = {}  # realpath -> [file object, depth]


class WorkdirBusy(RuntimeError):
  """Another process is training in this workdir."""


def _key(workdir: str) -> str:
  return os.path.realpath(workdir)


@contextlib.contextmanager
def locked(workdir: str, process_index: int = 0):
  """Holds the workdir's lock (re-entrant within a process) or raises WorkdirBusy."""
  if process_index != 0:
    yield
    return
  key = _key(workdir)
  if key in _held:
    _held[key][1] += 1
  else:
    _held[key] = [acquire(workdir), 1]
  try:
    yield
  finally:
    _held[key][1] -= 1
    if not _held[key][1]:
      _held.pop(key)[0].close()  # Closing the file releases the lock.


def acquire(workdir: str):
  """The open, flock-ed lock file; WorkdirBusy naming the holder if taken."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  f = open(path, "a+")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    f.seek(0)
    holder = f.read().strip() or "another process"
    f.close()
    raise WorkdirBusy(
        f"--workdir={workdir} is in use by {holder}: one trainer per "
        "workdir; wait for it to end or use another --workdir"
    ) from None
  f.seek(0)
  f.truncate()
  f.write(
      f"pid {os.getpid()} on {socket.gethostname()} since "
      f"{datetime.datetime.now().isoformat(timespec='seconds')}\n"
  )
  f.flush()
  return f


def is_foreign(workdir: str) -> bool:
  """Whether `workdir` holds files but not a run (so must not be written)."""
  if not os.path.isdir(workdir):
    return False
  entries = set(os.listdir(workdir)) - {LOCK_FILE}
  return bool(entries) and CONFIG_JSON not in entries


def has_checkpoints(workdir: str) -> bool:
  """Whether any training state was saved (a config change then matters)."""
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(
      name.split(".")[0].isdigit() for name in os.listdir(directory)
  )


def recorded_config(workdir: str) -> str | None:
  path = os.path.join(workdir, CONFIG_TXT)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return f.read().rstrip("\n")


def _fields(flattened: str) -> dict[str, str]:
  """`path: type = value` lines -> {path: value}."""
  fields = {}
  for line in flattened.splitlines():
    name, sep, rest = line.partition(":")
    if sep:
      fields[name.strip()] = rest.split("=", 1)[-1].strip()
  return fields


def config_diff(old: str, new: str, limit: int = 6) -> str:
  """`field: old -> new; ...` for the fields that differ (the first few)."""
  before, after = _fields(old), _fields(new)
  changed = [
      f"{name}: {before.get(name, '(absent)')} -> " f"{after.get(name, '(absent)')}"
      for name in sorted(set(before) | set(after), key=lambda n: (n not in before, n))
      if before.get(name) != after.get(name)
  ]
  more = len(changed) - limit
  return "; ".join(changed[:limit]) + (f"; and {more} more" if more > 0 else "")


def finished_step(workdir: str) -> int | None:
  """The final global step of a finished run (its result.json), else None."""
  path = os.path.join(workdir, RESULT_JSON)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return int(json.load(f).get("global_step", -1))
  except (ValueError, OSError, AttributeError):
    return -1


def archive_record(workdir: str) -> str:
  """Moves config.json/.txt and result.json into history/<n>/; returns it."""
  history = os.path.join(workdir, HISTORY_SUBDIR)
  n = 1
  while os.path.exists(os.path.join(history, str(n))):
    n += 1
  destination = os.path.join(history, str(n))
  os.makedirs(destination)
  for name in (CONFIG_JSON, CONFIG_TXT, RESULT_JSON):
    source = os.path.join(workdir, name)
    if os.path.exists(source):
      os.replace(source, os.path.join(destination, name))
  return destination
