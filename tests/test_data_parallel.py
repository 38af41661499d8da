"""Data parallelism: each device computes its share of the batch, exactly."""

import numpy as np

from conftest import run_device_worker


def test_four_devices_equal_one_and_split_the_work():
  out = run_device_worker("data_parallel_worker.py", 240)
  assert out["loss_1"] > 0
  np.testing.assert_allclose(out["loss_4"], out["loss_1"], rtol=1e-5)
  for g4, g1 in zip(out["grads_4"], out["grads_1"]):
    np.testing.assert_allclose(g4, g1, rtol=1e-4, atol=1e-6)
  # Each of 4 devices runs a quarter of the batch: the graph network's work
  # (most of the FLOPs) divides by 4; batch-independent edge embeddings and
  # the loss weights are computed on every device.
  assert out["flops_4"] < 0.4 * out["flops_1"]
