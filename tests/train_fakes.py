"""Small stand-ins for the GraphCast predictor and data layer, for trainer tests.

`TinyPredictor` follows the Predictor protocol (init_params, loss, rollout,
persistence_loss) with a tiny Flax network; `TinySpatialPredictor` splits its
loss over a mesh's space axis in latitude bands as `model.spatial` does
(`tiny_predictor` picks one as the trainer's factory); `TinyData` follows the data
layer's (normalization_stats, train_batches, eval_batches): a field advected
one grid column per step, deterministic in (seed, source, global step).
"""

from __future__ import annotations

import json
import os
import signal
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from graphcast_fdl import task as task_lib
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.train import config as train_config
from graphcast_fdl.train import schedule as schedule_lib
from graphcast_fdl.train import trainer as trainer_lib
from graphcast_fdl.train.experiment import Experiment

LAT, LON = 4, 8


class TinyNet(nn.Module):
  """Next-frame residual from a 3-column stencil of the last two frames."""

  @nn.compact
  def __call__(self, frames):  # [batch, 2, lat, lon] -> [batch, lat, lon]
    prev, last = frames[:, 0], frames[:, 1]
    features = jnp.stack([jnp.roll(last, 1, -1), last, jnp.roll(last, -1, -1), prev], axis=-1)
    hidden = nn.tanh(nn.Dense(8)(features))
    return nn.Dense(1)(hidden)[..., 0]


class TinyPredictor:
  """The Predictor protocol around TinyNet; variable "x" only."""

  def __init__(self, model, task, stats, graphs=None):
    del task, stats
    self.model = model
    self.graphs = graphs if graphs is not None else object()
    self.net = TinyNet()

  def init_params(self, rng, batch):
    return self.net.init(rng, batch.inputs["x"])["params"]

  def rollout(self, params, inputs, forcings, num_steps):
    del forcings
    frames, outputs = inputs["x"], []
    for _ in range(num_steps):
      nxt = frames[:, 1] + self.net.apply({"params": params}, frames)
      outputs.append(nxt)
      frames = jnp.stack([frames[:, 1], nxt], axis=1)
    return {"x": jnp.stack(outputs, axis=1)}

  def loss(self, params, batch):
    num_steps = batch.targets["x"].shape[1]
    pred = self.rollout(params, batch.inputs, batch.forcings, num_steps)
    per_variable = {"x": jnp.mean((pred["x"] - batch.targets["x"]) ** 2)}
    return per_variable["x"], per_variable

  def persistence_loss(self, batch):
    last = batch.inputs["x"][:, -1:]
    per_variable = {"x": jnp.mean((last - batch.targets["x"]) ** 2)}
    return per_variable["x"], per_variable


class TinySpatialPredictor(TinyPredictor):
  """TinyPredictor whose loss runs split over (data, space) of `mesh`.

  TinyNet's stencil runs along longitude only, so latitude bands need no
  halo: each device computes its band's squared errors and the means over
  the mesh equal the unsplit loss up to summation order.
  """

  splits_batch = True

  def __init__(self, model, task, stats, graphs=None, *, mesh, space_axis, data_axis):
    super().__init__(model, task, stats, graphs)
    self.mesh, self.space_axis, self.data_axis = mesh, space_axis, data_axis

  def batch_shardings(self, batch):
    """ "x" (arrays or shapes) in latitude bands over the space axis."""
    band = NamedSharding(self.mesh, P(self.data_axis, None, self.space_axis))
    rows = NamedSharding(self.mesh, P(self.data_axis))
    return jax.tree.map(lambda x: band if len(x.shape) == 4 else rows, batch)

  def place_batch(self, batch):
    """(batch, its `batch_shardings`): no padding needed (even bands)."""
    return batch, self.batch_shardings(batch)

  def loss(self, params, batch):
    band = P(self.data_axis, None, self.space_axis)

    def local(params, inputs, targets):
      pred = super(TinySpatialPredictor, self).rollout(params, {"x": inputs}, {}, targets.shape[1])
      mean = jax.lax.pmean(jnp.mean((pred["x"] - targets) ** 2), (self.data_axis, self.space_axis))
      return mean, {"x": mean}

    split = jax.shard_map(local, mesh=self.mesh, in_specs=(P(), band, band), out_specs=P())
    return split(params, batch.inputs["x"], batch.targets["x"])


def tiny_predictor(model, task, stats, graphs=None, mesh=None, **axes):
  """The trainer's predictor factory for the tiny model (spatial if `mesh`)."""
  if mesh is not None:
    return TinySpatialPredictor(model, task, stats, graphs, mesh=mesh, **axes)
  return TinyPredictor(model, task, stats, graphs)


def _example(seed: int, rollout_steps: int) -> np.ndarray:
  """[2 + rollout, lat, lon]: a random field moving one column east per step."""
  rng = np.random.default_rng(seed)
  field = rng.normal(size=(LAT, LON)).astype(np.float32)
  return np.stack([np.roll(field, t, axis=-1) for t in range(2 + rollout_steps)])


class TinyData:
  """Deterministic, resumable, host-sharded batches (as graphcast_fdl.data).

  Attributes:
    nan_steps: global steps whose batches hold NaN (to test skipping).
    signal_at: global step at whose batch this process sends itself SIGTERM.
    delay: seconds to wait before each batch (to leave time for a kill).
    yielded: global steps handed out, in order (to test resume positions).
    examples_read: examples of each training batch this process loaded.
    restored: steps iterators were set to from a checkpoint's state.
  """

  def __init__(self, nan_steps=(), signal_at=None, delay=0.0):
    self.nan_steps = set(nan_steps)
    self.signal_at = signal_at
    self.delay = delay
    self.yielded = []
    self.examples_read = []
    self.restored = []

  def normalization_stats(self, data, task, stats_dir=None):
    return None

  def _batch(self, data: DataConfig, rollout_steps: int, key: int, rows: range) -> Batch:
    source = sum(map(ord, data.source))
    frames = np.stack(
        [_example(hash((data.seed, source, key, i)) % 2**31, rollout_steps) for i in rows]
    )
    return Batch(
        inputs={"x": frames[:, :2]},
        targets={"x": frames[:, 2:]},
        forcings={"f": np.zeros((len(rows), rollout_steps, LON), np.float32)},
    )

  def train_batches(
      self, data, task, rollout_steps, start_step, process_index=None, process_count=None
  ):
    del task
    count = process_count or 1
    local = data.global_batch_size // count
    rows = range((process_index or 0) * local, ((process_index or 0) + 1) * local)
    return _TinyIterator(self, data, rollout_steps, rows, start_step)

  def eval_batches(self, data, task, rollout_steps, num_batches):
    del task
    rows = range(data.global_batch_size)
    return [self._batch(data, rollout_steps, -1 - i, rows) for i in range(num_batches)]


class _TinyIterator:
  """TinyData's batches from a step, with a state as Grain's iterators have
  (JSON bytes), so the trainer checkpoints and restores it."""

  def __init__(self, source, data, rollout_steps, rows, step):
    self.source, self.data, self.rollout_steps, self.rows = source, data, rollout_steps, rows
    self.step = step

  def __iter__(self):
    return self

  def __next__(self):
    source, step = self.source, self.step
    batch = source._batch(self.data, self.rollout_steps, step, self.rows)
    if step in source.nan_steps:
      batch.inputs["x"][:] = np.nan
    if step == source.signal_at:
      os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(source.delay)
    source.yielded.append(step)
    source.examples_read.append(len(self.rows))
    self.step += 1
    return batch

  def get_state(self) -> bytes:
    return json.dumps({"step": self.step}).encode()

  def set_state(self, state) -> None:
    self.step = json.loads(state)["step"]
    self.source.restored.append(self.step)

  def start_prefetch(self):
    pass


def tiny_experiment(
    num_devices=1, global_batch_size=4, steps=(12, 4, 3, 3), every_steps=5, **kwargs
) -> Experiment:
  """1-step warm-up+cosine, a fine-tune on another source, rollouts 2 and 3."""
  first, tune, *anneal = steps
  other = DataConfig(source="other", resolution=4.0, global_batch_size=global_batch_size)
  phases = (
      schedule_lib.single_step(first, warmup_steps=3, peak_lr=3e-2)
      + schedule_lib.finetune(tune, lr=1e-2, data=other)
      + [
          schedule_lib.Phase(
              f"rollout_{k}", n, rollout_steps=k, learning_rate=schedule_lib.LearningRate(1e-2)
          )
          for k, n in zip(range(2, 2 + len(anneal)), anneal)
      ]
  )
  defaults = dict(
      name="tiny",
      model=ModelConfig(resolution=4.0, precision="float32"),
      task=task_lib.task_13(),
      data=DataConfig(source="tiny", resolution=4.0, global_batch_size=global_batch_size),
      schedule=schedule_lib.Schedule(phases=phases),
      mesh=train_config.MeshConfig(num_devices=num_devices),
      checkpoint=train_config.CheckpointConfig(every_steps=every_steps, max_to_keep=2),
      eval=train_config.EvalConfig(every_steps=10, num_batches=2),
      log_every_steps=5,
  )
  defaults.update(kwargs)
  return Experiment(**defaults)


def run_trainer(experiment, workdir, data=None):
  """Trains `experiment` in `workdir` with the tiny predictor and data."""
  trainer = trainer_lib.Trainer(
      experiment,
      str(workdir),
      predictor_factory=tiny_predictor,
      data_module=data or TinyData(),
  )
  return trainer.run()


def params_target():
  """Parameters of the tiny predictor: the target a checkpoint loads onto."""
  return TinyPredictor(None, None, None).init_params(
      jax.random.PRNGKey(0),
      TinyData()._batch(tiny_experiment().data, 1, 0, range(1)),  # pylint: disable=protected-access
  )


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """Runs recompile the same steps; a persistent cache makes repeats cheap.

  Autouse in each test module that imports it (modules that train often).
  """
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
  before = [getattr(jax.config, n) for n in names]
  jax.config.update(names[0], str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update(names[1], 0.0)
  yield
  for name, value in zip(names, before):
    jax.config.update(name, value)
