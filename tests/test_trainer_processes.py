"""The trainer in real processes: killed and resumed, and across 2 processes.

Each run is a fresh `python tests/train_worker.py` process (so the device
count can differ), under `timeout -s KILL` since gloo collectives can hang.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "train_worker.py")
TIMEOUT_S = 240


def _command(spec):
  return ["timeout", "-s", "KILL", str(TIMEOUT_S), sys.executable, WORKER, json.dumps(spec)]


def _env():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_worker(spec):
  proc = subprocess.run(_command(spec), env=_env(), capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def start_worker(spec):
  return subprocess.Popen(
      _command(spec), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )


def load(path):
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def assert_same_params(a, b, **tolerance):
  assert a.keys() == b.keys()
  for key in a:
    if tolerance:
      np.testing.assert_allclose(a[key], b[key], err_msg=key, **tolerance)
    else:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _steps(directory):
  if not os.path.isdir(directory):
    return set()
  return {int(n) for n in os.listdir(directory) if n.isdigit()}


def wait_for_checkpoint(workdir, proc, at_least, timeout=TIMEOUT_S):
  """Waits until this process has written a checkpoint >= `at_least`."""
  directory = os.path.join(workdir, "checkpoints")
  before = _steps(directory)
  start = time.time()
  while time.time() - start < timeout:
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    new = _steps(directory) - before
    if new and max(new) >= at_least:
      return max(new)
    time.sleep(0.2)
  raise TimeoutError(f"no checkpoint >= {at_least} in {directory}")


def signal_python(proc, signum):
  """Signals the training process itself (`timeout` runs it as a child)."""
  for _ in range(100):
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    if children:
      os.kill(int(children[0]), signum)
      return
    time.sleep(0.05)
  raise RuntimeError(f"no child process under {proc.pid}")


def kill_and_resume(kind, tmp_path, spec, kill_after_checkpoint, term_after=None):
  """Uninterrupted run vs. SIGKILL, then SIGTERM (unless `term_after` is
  None), then a run to the end. Returns the last run's stderr."""
  reference = dict(spec, kind=kind, workdir=str(tmp_path / "ref"), out=str(tmp_path / "ref.npz"))
  run_worker(reference)
  resumed = dict(spec, kind=kind, workdir=str(tmp_path / "run"), out=str(tmp_path / "run.npz"))
  # A real kill: no chance to save; resume from the last periodic checkpoint.
  proc = start_worker(resumed)
  wait_for_checkpoint(resumed["workdir"], proc, kill_after_checkpoint)
  signal_python(proc, signal.SIGKILL)
  proc.communicate()
  if term_after is not None:
    # A preemption notice: the process checkpoints the step it is on and exits.
    proc = start_worker(resumed)
    wait_for_checkpoint(resumed["workdir"], proc, term_after)
    signal_python(proc, signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Stopped by signal 15" in err
  last = run_worker(resumed)
  assert_same_params(load(reference["out"]), load(resumed["out"]))
  return last.stderr


def test_tiny_kill_and_resume_equals_uninterrupted(tmp_path):
  spec = {"devices": 1, "delay": 0.3, "cache_dir": str(tmp_path / "cache")}
  kill_and_resume("tiny", tmp_path, spec, kill_after_checkpoint=5, term_after=12)


def _two_processes(tmp_path, spatial=1):
  """Trains on 2 processes x 2 devices; (params, examples each process read)."""
  port = free_port()
  out = str(tmp_path / f"two{spatial}.npz")
  procs = [
      start_worker(
          {
              "kind": "tiny",
              "devices": 2,
              "spatial": spatial,
              "num_processes": 2,
              "process_id": i,
              "port": port,
              "workdir": str(tmp_path / f"two{spatial}"),
              "out": out,
          }
      )
      for i in range(2)
  ]
  for proc in procs:
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
  read = []
  for i in range(2):
    with open(f"{out}.{i}.json", encoding="utf-8") as f:
      read.append(json.load(f)["examples_read"])
  return load(out), read


@pytest.mark.slow
def test_tiny_two_processes_equal_one_process(tmp_path):
  one = {
      "kind": "tiny",
      "devices": 4,
      "workdir": str(tmp_path / "one"),
      "out": str(tmp_path / "one.npz"),
  }
  run_worker(one)
  params, read = _two_processes(tmp_path)
  assert read == [[2] * 22, [2] * 22]  # Each process its half of the batch of 4.
  # Equal up to the order of the cross-device gradient sum (XLA's in one
  # process, gloo's across two): about 1e-6 relative after 22 steps.
  assert_same_params(load(one["out"]), params, rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_two_processes_split_examples_equal_one_process(tmp_path):
  """(data 2, space 2): each process's two devices share its examples;
  (data 1, space 4): both processes' devices share every example."""
  one = {"kind": "tiny", "devices": 4, "workdir": str(tmp_path / "one")}
  one["out"] = str(tmp_path / "one.npz")
  run_worker(one)
  for spatial, examples in ((2, 2), (4, 4)):
    params, read = _two_processes(tmp_path, spatial)
    # Each process loads the examples its devices hold, once.
    assert read == [[examples] * 22, [examples] * 22], spatial
    assert_same_params(load(one["out"]), params, rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_failed_save_exits_at_once_with_one_line(tmp_path):
  # Without the guard, Orbax's barrier threads kept such a process ~300 s.
  spec = {
      "kind": "tiny",
      "devices": 1,
      "workdir": str(tmp_path / "run"),
      "out": str(tmp_path / "run.npz"),
      "break_checkpoints_at": 8,
      "delay": 0.2,
      "cache_dir": str(tmp_path / "cache"),
  }
  start = time.time()
  proc = subprocess.run(_command(spec), env=_env(), capture_output=True, text=True, check=False)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert time.time() - start < 120
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: checkpoint saving failed at step ")
  assert "(not a directory); the checkpoints already there are kept" in last
  # The checkpoint written before the failure is intact.
  moved = os.path.join(spec["workdir"], "checkpoints.moved")
  assert "5" in os.listdir(moved)
