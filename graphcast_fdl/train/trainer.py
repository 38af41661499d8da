"""The trainer: runs an experiment's phase schedule to the end, resumably.

The shape follows flax's `examples/ogbg_molpcba/train.py` (writer, data, init,
optimizer, restore-or-init, hooks, loop) with an outer loop over phases. The
global step is the only position: it fixes the phase, rollout length,
learning rate and the data each step sees, so a restarted run picks up where
its last checkpoint left off and ends with the same parameters.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any, Callable

from absl import logging
from clu import metric_writers
from clu import parameter_overview
from clu import periodic_actions
import jax
import jax.numpy as jnp
import numpy as np

from graphcast_fdl.train import checkpointing
from graphcast_fdl.train import metrics as metrics_lib
from graphcast_fdl.train import optimizer as optimizer_lib
from graphcast_fdl.train import progress as progress_lib
from graphcast_fdl.train import sharding as sharding_lib
from graphcast_fdl.train import train_step as train_step_lib
from graphcast_fdl.train.experiment import Experiment
from graphcast_fdl.train.schedule import Phase, PhaseSpan


class NonFiniteError(RuntimeError):
  """Too many non-finite steps in a row; the last good checkpoint is kept."""


class Preempted(SystemExit):
  """SIGTERM/SIGINT arrived; the state was saved. Exit code 128 + signal."""


def _default_predictor_factory(model, task, stats, graphs=None, mesh=None,
                               **spatial_axes):
  from graphcast_fdl.model.predictor import Predictor  # pylint: disable=g-import-not-at-top
  if mesh is not None:  # Each example split over the mesh's space axis.
    from graphcast_fdl.model.spatial import SpatialPredictor  # pylint: disable=g-import-not-at-top
    return SpatialPredictor(model, task, stats, graphs, mesh=mesh,
                            **spatial_axes)
  return Predictor(model, task, stats, graphs=graphs)


def _default_data_module():
  from graphcast_fdl import data  # pylint: disable=g-import-not-at-top
  return data


class _StopSignal:
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
    logging.warning("Received signal %d: saving a checkpoint after this step",
                    signum)
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


class _DropOrbaxInfo(logging.logging.Filter):
  """Orbax logs dozens of INFO lines per save; keep its warnings only."""

  def filter(self, record):
    return record.levelno > logging.logging.INFO or (
        f"{os.sep}orbax{os.sep}" not in record.pathname)


def _quiet_orbax() -> None:
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


class Trainer:
  """Trains `experiment` in `workdir` (TensorBoard events, checkpoints).

  Args:
    experiment: the built experiment.
    workdir: where events and `checkpoints/` go; an existing one is resumed.
    predictor_factory: (model, task, stats, graphs=None) -> predictor with
      `init_params(rng, batch)`, `loss(params, batch)`, `rollout(...)` and
      optionally `persistence_loss(batch)` and `graphs`; default the GraphCast
      `Predictor`. Tests pass small stand-ins. With `mesh.spatial` > 1 it
      also gets `mesh`, `space_axis` and `data_axis`.
    data_module: provides `normalization_stats`, `train_batches` and
      `eval_batches` as `graphcast_fdl.data` does (the default).
    devices: devices to build the mesh from (default all visible).

  After `run()`, `state` holds the final TrainState.
  """

  def __init__(self, experiment: Experiment, workdir: str, *,
               predictor_factory: Callable[..., Any] | None = None,
               data_module: Any = None, devices=None):
    self.experiment = experiment
    self.workdir = workdir
    self._predictor_factory = predictor_factory or _default_predictor_factory
    self._data = data_module or _default_data_module()
    self._devices = devices
    self._predictors = {}
    self.state = None

  # -- Pieces -------------------------------------------------------------

  def _predictor(self, phase: Phase | None):
    """The predictor of a phase: the model with its precision/remat overrides."""
    model = self.experiment.model
    if phase is not None:
      model = dataclasses.replace(
          model, precision=phase.precision or model.precision,
          remat=phase.remat or model.remat)
    key = (model.precision, model.remat)
    if key not in self._predictors:
      base = next(iter(self._predictors.values()), None)
      graphs = getattr(base, "graphs", None)
      spatial = {}
      mesh_config = self.experiment.mesh
      if mesh_config.spatial > 1:
        spatial = dict(mesh=self._mesh, space_axis=mesh_config.space_axis,
                       data_axis=mesh_config.data_axis)
      self._predictors[key] = self._predictor_factory(
          model, self.experiment.task, self._stats, graphs=graphs, **spatial)
    return self._predictors[key]

  def _train_iterator(self, span: PhaseSpan, step: int):
    data = span.phase.data or self.experiment.data
    return self._data.train_batches(
        data, self.experiment.task, span.phase.rollout_steps, step,
        process_index=jax.process_index(), process_count=jax.process_count())

  def _global(self, local_batch):
    return sharding_lib.to_global(local_batch, self._mesh)

  def _eval_batches(self):
    """Held-out batches, loaded once; each process keeps its slice."""
    if self._eval_cache is None:
      cfg = self.experiment.eval
      batches = self._data.eval_batches(
          self.experiment.data, self.experiment.task, cfg.rollout_steps,
          cfg.num_batches)
      self._eval_cache = [self._global(self._local_slice(b)) for b in batches]
    return self._eval_cache

  def _local_slice(self, batch):
    """This process's rows of a batch that every process loaded whole."""
    count, index = jax.process_count(), jax.process_index()
    if count == 1:
      return batch
    def leaf(x):
      n = x.shape[0] // count
      return x[index * n:(index + 1) * n]
    return jax.tree.map(leaf, batch)

  def evaluate(self, params) -> dict[str, float]:
    """Mean loss (and per variable) on the held-out split, and persistence's."""
    predictor = self._predictor(None)
    if self._eval_step is None:
      self._eval_step = train_step_lib.jit_eval_step(
          sharding_lib.data_parallel(predictor.loss, self._mesh),
          self._param_shardings, self._mesh)
      from graphcast_fdl.train import baselines  # pylint: disable=g-import-not-at-top
      persistence_loss = getattr(predictor, "persistence_loss", None) or (
          baselines.persistence_loss_fn(
              self.experiment.model, self.experiment.task, self._stats))
      self._persistence_step = jax.jit(
          persistence_loss,
          in_shardings=(sharding_lib.batch_sharding(self._mesh),),
          out_shardings=sharding_lib.replicated(self._mesh))
    model_means = metrics_lib.MeanMetrics("eval")
    persistence_means = metrics_lib.MeanMetrics("persistence")
    for batch in self._eval_batches():
      loss, per_variable = metrics_lib.to_host(self._eval_step(params, batch))
      model_means.add({"loss": loss, "per_variable": per_variable})
      loss, per_variable = metrics_lib.to_host(self._persistence_step(batch))
      persistence_means.add({"loss": loss, "per_variable": per_variable})
    result = model_means.result()
    result.update(persistence_means.result())
    result.pop("eval/skipped_steps")
    result.pop("persistence/skipped_steps")
    return result

  def _initial_params(self, predictor, rng, batch, abstract_params):
    """Random init, or the weights named by `experiment.init_checkpoint`."""
    path = self.experiment.init_checkpoint
    if path is None:
      init = jax.jit(predictor.init_params,
                     out_shardings=self._param_shardings)
      return init(rng, batch)
    if path.endswith(".npz"):
      from graphcast_fdl.checkpoints import npz_format  # pylint: disable=g-import-not-at-top
      loaded = npz_format.load(path).params
      expected = jax.tree.map(np.shape, abstract_params)
      if jax.tree.map(np.shape, loaded) != expected:
        raise ValueError(
            f"init_checkpoint={path}: its parameter shapes do not match "
            "experiment.model and experiment.task")
      return jax.tree.map(
          lambda x, s: jax.make_array_from_callback(
              np.shape(x), s, lambda idx: np.asarray(x)[idx]),
          loaded, self._param_shardings)
    logging.info("Fine-tuning from parameters of %s", path)
    return checkpointing.load_params(path, abstract_params)

  def _meta(self, step: int) -> dict:
    """For people reading a checkpoint: where in the schedule it resumes."""
    span = self.experiment.schedule.span_at(step)
    return {"experiment": self.experiment.name, "global_step": step,
            "next_phase": span.phase.name if span else None,
            "next_rollout_steps": span.phase.rollout_steps if span else None}

  # -- The run ------------------------------------------------------------

  def run(self) -> dict:
    """Runs (or resumes) the schedule to the end; returns final metrics."""
    experiment, workdir = self.experiment, self.workdir
    schedule = experiment.schedule
    start_time = time.time()
    os.makedirs(workdir, exist_ok=True)
    _quiet_orbax()
    cache_dir = experiment.train.compilation_cache_dir
    if cache_dir:
      jax.config.update("jax_compilation_cache_dir",
                        os.path.join(os.path.abspath(workdir), cache_dir))
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    self._eval_cache = None
    self._eval_step = None
    self._persistence_step = None

    # Create the metric writer: TensorBoard event files and the console.
    writer = metric_writers.create_default_writer(
        workdir, just_logging=jax.process_index() > 0, asynchronous=True)

    # Lay out the device mesh; the global batch splits over its data axis.
    self._mesh = sharding_lib.make_mesh(experiment.mesh, self._devices)
    sharding_lib.per_process_batch_size(experiment.data.global_batch_size)
    multi_device = self._mesh.size > 1 or jax.process_count() > 1
    logging.info("Mesh %s over %d process(es)", dict(self._mesh.shape),
                 jax.process_count())

    # Normalisation statistics and the model.
    self._stats = self._data.normalization_stats(
        experiment.data, experiment.task, experiment.stats_dir)
    predictor = self._predictor(None)

    # The optimiser, with the learning rate following the global step.
    tx = optimizer_lib.make_optimizer(experiment.optimizer)
    learning_rate_fn = optimizer_lib.schedule_learning_rate(schedule)

    # Restore the latest checkpoint, or initialise (randomly or fine-tuning).
    checkpointer = checkpointing.Checkpointer(workdir, experiment.checkpoint)
    latest = checkpointer.latest_step()
    step = latest or 0
    first_span = schedule.span_at(step)
    rng = jax.random.PRNGKey(experiment.seed)
    init_rng, state_rng = jax.random.split(rng)
    # The first batch also gives the shapes to initialise (or restore) with.
    shape_span = first_span or schedule.spans()[-1]
    iterator = self._train_iterator(
        shape_span, step if first_span else shape_span.start)
    first_batch = self._global(next(iterator))
    abstract_state = jax.eval_shape(
        lambda b: train_step_lib.create_state(
            predictor.init_params(init_rng, b), tx, state_rng), first_batch)
    state_shardings = train_step_lib.state_shardings(
        abstract_state, self._mesh, experiment.mesh.shard_params)
    self._param_shardings = state_shardings.params
    if latest is not None:
      target = jax.tree.map(
          lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
          abstract_state, state_shardings)
      state = checkpointer.restore(target, latest)
      logging.info("Resumed from checkpoint at global step %d (%s)", latest,
                   self._meta(latest))
    else:
      abstract_params = jax.tree.map(
          lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
          abstract_state.params, state_shardings.params)
      params = self._initial_params(predictor, init_rng, first_batch,
                                    abstract_params)
      state = jax.jit(
          lambda p: train_step_lib.create_state(p, tx, state_rng),
          out_shardings=state_shardings)(params)
      parameter_overview.log_parameter_overview(state.params)
    if first_span is None:
      iterator, first_batch = None, None  # Nothing left to train.
    writer.write_hparams({"num_params": int(sum(
        np.prod(x.shape) for x in jax.tree.leaves(abstract_state.params)))})

    # Hooks: progress with ETAs, and a profiler trace on request.
    report_progress = progress_lib.ScheduleProgress(
        schedule, writer=writer, every_steps=experiment.log_every_steps)
    hooks = [report_progress]
    if experiment.train.profile_steps and jax.process_index() == 0:
      hooks.append(periodic_actions.Profile(
          logdir=workdir, num_profile_steps=experiment.train.profile_steps,
          first_profile=experiment.train.profile_first_step, every_secs=None,
          profile_duration_ms=None))

    train_means = metrics_lib.MeanMetrics("train")
    train_steps = {}
    max_nonfinite = experiment.train.max_nonfinite_in_a_row
    with _StopSignal() as stop:
      # The outer loop runs phases; the inner one their steps.
      for span in schedule.spans()[first_span.index if first_span else
                                   len(schedule.phases):]:
        phase = span.phase
        logging.info("Phase %s (%d/%d): steps [%d, %d), rollout %d, start %d",
                     phase.name, span.index + 1, len(schedule.phases),
                     span.start, span.end, phase.rollout_steps, step)
        # Phases with the same precision and remat share one jitted step
        # (and its compiled executable when the rollout length matches).
        phase_predictor = self._predictor(phase)
        if id(phase_predictor) not in train_steps:
          train_steps[id(phase_predictor)] = train_step_lib.jit_train_step(
              train_step_lib.make_train_step(
                  sharding_lib.data_parallel(phase_predictor.loss, self._mesh),
                  tx, learning_rate_fn),
              state_shardings, self._mesh)
        train_step = train_steps[id(phase_predictor)]
        if iterator is None:
          iterator = self._train_iterator(span, step)
        eval_every = phase.eval_every_steps or experiment.eval.every_steps
        while step < span.end:
          if first_batch is not None:
            batch, first_batch = first_batch, None
          else:
            batch = self._global(next(iterator))
          with jax.profiler.StepTraceAnnotation("train", step_num=step):
            state, step_metrics = train_step(state, batch)
          step += 1
          # Reading back the counters waits for the step: with several
          # devices (and gloo across processes) this also avoids hangs.
          host = metrics_lib.to_host(
              (step_metrics, state.nonfinite_in_a_row, state.nonfinite_total))
          step_metrics, in_a_row, total_nonfinite = host
          train_means.add(step_metrics)
          if in_a_row:
            logging.warning("Skipped step %d: non-finite loss or gradient "
                            "(%d in a row, %d in total)", step, in_a_row,
                            total_nonfinite)
          if in_a_row >= max_nonfinite:
            checkpointer.close()
            writer.flush()
            raise NonFiniteError(
                f"{in_a_row} non-finite steps in a row (train."
                f"max_nonfinite_in_a_row={max_nonfinite}) at global step "
                f"{step} in phase {phase.name!r}; last good checkpoint: step "
                f"{checkpointer.latest_step()} in {checkpointer.directory}")
          for hook in hooks:
            hook(step)

          if step % experiment.log_every_steps == 0 or step == span.end:
            scalars = train_means.result()
            scalars["train/nonfinite_total"] = float(total_nonfinite)
            scalars["train/rollout_steps"] = float(phase.rollout_steps)
            writer.write_scalars(step, scalars)
            train_means.reset()

          if eval_every and step % eval_every == 0:
            with report_progress.timed("eval"):
              writer.write_scalars(step, self.evaluate(state.params))

          if not in_a_row:
            checkpointer.save(state, self._meta(step), force=step == span.end)

          signum = stop.any_process()
          if signum:
            if in_a_row:
              logging.warning("Stopping during a non-finite streak: keeping "
                              "the last good checkpoint")
            else:
              checkpointer.save(state, self._meta(step), force=True)
            checkpointer.close()
            writer.flush()
            logging.warning("Stopped by signal %d at global step %d; rerun "
                            "with the same workdir to resume", signum, step)
            raise Preempted(128 + signum)
        iterator = None
        logging.info("Finished phase %s at global step %d", phase.name, step)

    # Final evaluation on the held-out split, against persistence.
    checkpointer.save(state, self._meta(step), force=True)
    checkpointer.close()
    self.state = state
    final = self.evaluate(state.params)
    writer.write_scalars(step, final)
    writer.flush()
    result = {"global_step": step,
              "nonfinite_total": int(metrics_lib.to_host(state.nonfinite_total)),
              "wall_time_s": time.time() - start_time}
    result.update(final)
    logging.info("Final evaluation at step %d: %s", step, result)
    return result
