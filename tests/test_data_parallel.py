"""Data parallelism: each device computes its share of the batch, exactly."""

import json
import os
import subprocess
import sys

import numpy as np

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data_parallel_worker.py")


def test_four_devices_equal_one_and_split_the_work():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      ["timeout", "-s", "KILL", "240", sys.executable, WORKER],
      capture_output=True,
      text=True,
      env=env,
      check=False,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["loss_1"] > 0
  np.testing.assert_allclose(out["loss_4"], out["loss_1"], rtol=1e-5)
  for g4, g1 in zip(out["grads_4"], out["grads_1"]):
    np.testing.assert_allclose(g4, g1, rtol=1e-4, atol=1e-6)
  # Each of 4 devices runs a quarter of the batch: the graph network's work
  # (most of the FLOPs) divides by 4; batch-independent edge embeddings and
  # the loss weights are computed on every device.
  assert out["flops_4"] < 0.4 * out["flops_1"]
