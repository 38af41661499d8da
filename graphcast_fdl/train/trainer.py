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
import time
from typing import Any, Callable

from absl import logging
from clu import metric_writers
from clu import parameter_overview
from clu import periodic_actions
import jax
import numpy as np

from graphcast_fdl import checkpoints
from graphcast_fdl.train import checkpointing
from graphcast_fdl.train import experiment as experiment_lib
from graphcast_fdl.train import metrics as metrics_lib
from graphcast_fdl.train import optimizer as optimizer_lib
from graphcast_fdl.train import preemption
from graphcast_fdl.train import progress as progress_lib
from graphcast_fdl.train import sharding as sharding_lib
from graphcast_fdl.train import train_step as train_step_lib
from graphcast_fdl.train import workdir as workdir_lib
from graphcast_fdl.train.experiment import Experiment
from graphcast_fdl.train.preemption import Preempted  # pylint: disable=unused-import
from graphcast_fdl.train.schedule import Phase, PhaseSpan


class NonFiniteError(RuntimeError):
  """Too many non-finite steps in a row; the last good checkpoint is kept."""


@dataclasses.dataclass
class RunState:
  """What `Trainer.setup` builds and the loop reads (and advances).

  Attributes:
    mesh: the device mesh of the current phase; the global batch splits over
      its data axis (and each example over its space axis, if any).
    state_shardings: a TrainState of shardings on `mesh`, one per leaf.
    stats: normalisation statistics the predictors were built with.
    tx: the optimiser; learning_rate_fn: global step -> rate.
    checkpointer: saves and restores `<workdir>/checkpoints`.
    state: the TrainState (restored, or initialised).
    step: the global step `state` is at.
    iterator: training batches of the phase `step` is in (None: made when
      needed); its state, if it has one, is checkpointed with the train state.
    first_batch: the batch of `step`, already on the devices (read at setup
      to learn the shapes, then one step ahead so that its transfer overlaps
      the step before).
    num_params: parameter count.
  """

  mesh: Any
  state_shardings: Any
  stats: Any
  tx: Any
  learning_rate_fn: Callable[[int], Any]
  checkpointer: checkpointing.Checkpointer
  state: Any
  step: int
  iterator: Any
  first_batch: Any
  num_params: int


def _default_predictor_factory(model, task, stats, graphs=None, mesh=None, **spatial_axes):
  from graphcast_fdl.model.predictor import Predictor  # pylint: disable=g-import-not-at-top

  if mesh is not None:  # Each example split over the mesh's space axis.
    from graphcast_fdl.model.spatial import SpatialPredictor  # pylint: disable=g-import-not-at-top

    return SpatialPredictor(model, task, stats, graphs, mesh=mesh, **spatial_axes)
  return Predictor(model, task, stats, graphs=graphs)


def _close(iterator) -> None:
  """Stops an iterator's reader threads and worker processes, if any."""
  getattr(iterator, "close", lambda: None)()


def _default_data_module():
  from graphcast_fdl import data  # pylint: disable=g-import-not-at-top

  return data


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
      `eval_batches` as `graphcast_fdl.data` does (the default). Iterators
      with `get_state`/`set_state` (Grain's) are saved in checkpoints.
    devices: devices to build the mesh from (default all visible).
    step_seconds: estimated seconds per step of each phase (the estimator's);
      the ETA prices the phases ahead with their ratios.

  `setup()` builds the run's state (`run_state`) and `run()` the loop over
  it; after `run()`, `state` holds the final TrainState.
  """

  def __init__(
      self,
      experiment: Experiment,
      workdir: str,
      *,
      predictor_factory: Callable[..., Any] | None = None,
      data_module: Any = None,
      devices=None,
      step_seconds=None,
  ):
    self.experiment = experiment
    self.workdir = workdir
    self._predictor_factory = predictor_factory or _default_predictor_factory
    self._data = data_module or _default_data_module()
    self._devices = devices
    self._step_seconds = step_seconds
    self._predictors = {}
    self._train_steps = {}
    self._meshes = {}
    self._mesh_config = None
    self._abstract_state = None
    self._pending_state = None
    self._batch_shapes = None
    self.state = None
    self.run_state = None

  # -- Pieces -------------------------------------------------------------

  def _predictor(self, phase: Phase | None):
    """The predictor of a phase: the model with its precision/remat overrides
    on the phase's mesh (None: the experiment's model on the current mesh)."""
    model, mesh_config = self.experiment.model, self._mesh_config
    if phase is not None:
      settings = experiment_lib.phase_settings(self.experiment, phase)
      model, mesh_config = settings.model, settings.mesh
    key = (model.precision, model.remat, mesh_config.spatial)
    if key not in self._predictors:
      base = next(iter(self._predictors.values()), None)
      graphs = getattr(base, "graphs", None)
      spatial = {}
      if mesh_config.spatial > 1:
        spatial = dict(
            mesh=self._layout(mesh_config)[0],
            space_axis=mesh_config.space_axis,
            data_axis=mesh_config.data_axis,
        )
      self._predictors[key] = self._predictor_factory(
          model, self.experiment.task, self._stats, graphs=graphs, **spatial
      )
    return self._predictors[key]

  def _layout(self, mesh_config):
    """(mesh, state shardings or None before setup knows the state's shapes)
    of a spatial split; one mesh per split, over the same devices."""
    key = mesh_config.spatial
    if key not in self._meshes:
      mesh = sharding_lib.make_mesh(mesh_config, self._devices)
      self._meshes[key] = (mesh, None)
    mesh, shardings = self._meshes[key]
    if shardings is None and self._abstract_state is not None:
      shardings = train_step_lib.state_shardings(
          self._abstract_state, mesh, mesh_config.shard_params
      )
      self._meshes[key] = (mesh, shardings)
    return mesh, shardings

  def _use_layout(self, phase: Phase):
    """Makes `phase`'s mesh the current one, moving the state onto it."""
    mesh_config = experiment_lib.phase_settings(self.experiment, phase).mesh
    if mesh_config == self._mesh_config and self.run_state is not None:
      return
    self._mesh_config = mesh_config
    self._mesh, state_shardings = self._layout(mesh_config)
    if state_shardings is None:
      return
    self._param_shardings = state_shardings.params
    run = self.run_state
    if run is not None:
      logging.info("Phase %s runs on mesh %s", phase.name, dict(self._mesh.shape))
      run.mesh, run.state_shardings = self._mesh, state_shardings
      run.state = jax.jit(lambda s: s, out_shardings=state_shardings)(run.state)

  def _train_iterator(self, span: PhaseSpan, step: int):
    """Batches of the phase's data: this process's block of each, the
    examples its devices' data rows hold (`sharding.process_rows`)."""
    data = experiment_lib.phase_settings(self.experiment, span.phase).data
    block, blocks = sharding_lib.process_rows(self._mesh)
    return self._data.train_batches(
        data,
        self.experiment.task,
        span.phase.rollout_steps,
        step,
        process_index=block,
        process_count=blocks,
    )

  def _global(self, local_batch, phase: Phase | None = None):
    """A host-local batch -> global arrays on the current mesh. A phase's
    train batch of a predictor that places its own (`place_batch`: a spatial
    one's latitude bands) is placed so, each device getting only its band;
    with `remat.host_targets` / `host_inputs` its targets / input frames go
    straight into host memory (never the device's)."""
    # Names and ranks of the batch arrays, for the shardings a step is
    # jitted with (`train_step_for`); the same in every phase.
    self._batch_shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), local_batch)
    predictor = self._predictor(phase)
    if hasattr(predictor, "place_batch"):  # Eval batches too: in bands.
      local_batch, shardings = predictor.place_batch(local_batch)
      return sharding_lib.to_global(local_batch, self._mesh, shardings)
    if phase is None:
      return sharding_lib.to_global(local_batch, self._mesh)
    remat = predictor.model.remat
    shardings = sharding_lib.train_batch_sharding(self._mesh, remat.host_targets, remat.host_inputs)
    return sharding_lib.to_global(local_batch, self._mesh, shardings)

  def _eval_batches(self):
    """Held-out batches, loaded once; each process keeps its slice (placed
    on each mesh the evaluations run on)."""
    if self._eval_whole is None:
      cfg = self.experiment.eval
      self._eval_whole = self._data.eval_batches(
          self.experiment.data, self.experiment.task, cfg.rollout_steps, cfg.num_batches
      )
    key = self._mesh_config.spatial
    if key not in self._eval_cache:
      self._eval_cache = {key: [self._global(self._local_slice(b)) for b in self._eval_whole]}
    return self._eval_cache[key]

  def _local_slice(self, batch):
    """This process's block of a batch that every process loaded whole."""
    index, count = sharding_lib.process_rows(self._mesh)
    if count == 1:
      return batch

    def leaf(x):
      n = x.shape[0] // count
      return x[index * n : (index + 1) * n]

    return jax.tree.map(leaf, batch)

  def evaluate(self, params) -> dict[str, float]:
    """Mean loss (and per variable) on the held-out split, and persistence's,
    on the current phase's mesh (where `params` are)."""
    predictor = self._predictor(None)
    if self._mesh_config.spatial not in self._eval_steps:
      # A spatial predictor's batches are placed in latitude bands (`_global`).
      batches = self._eval_batches()
      batch_shardings = sharding_lib.batch_sharding(self._mesh)
      if hasattr(predictor, "place_batch") and batches:
        batch_shardings = jax.tree.map(lambda x: x.sharding, batches[0])
      self._eval_steps[self._mesh_config.spatial] = (
          train_step_lib.jit_eval_step(
              sharding_lib.data_parallel(predictor.loss, self._mesh),
              self._param_shardings,
              self._mesh,
              batch_shardings,
          ),
          jax.jit(
              predictor.persistence_loss,
              in_shardings=(batch_shardings,),
              out_shardings=sharding_lib.replicated(self._mesh),
          ),
      )
    eval_step, persistence_step = self._eval_steps[self._mesh_config.spatial]
    model_metrics = metrics_lib.EvalMetrics.empty()
    persistence_metrics = metrics_lib.EvalMetrics.empty()
    for batch in self._eval_batches():
      loss, per_variable = metrics_lib.to_host(eval_step(params, batch))
      model_metrics = model_metrics.merge(
          metrics_lib.EvalMetrics.from_step({"loss": loss, "per_variable": per_variable})
      )
      loss, per_variable = metrics_lib.to_host(persistence_step(batch))
      persistence_metrics = persistence_metrics.merge(
          metrics_lib.EvalMetrics.from_step({"loss": loss, "per_variable": per_variable})
      )
    result = metrics_lib.flatten(model_metrics.compute(), "eval")
    result.update(metrics_lib.flatten(persistence_metrics.compute(), "persistence"))
    return result

  def _initial_params(self, predictor, rng, batch, abstract_params):
    """Random init, or the weights named by `experiment.init_checkpoint`."""
    path = self.experiment.init_checkpoint
    if path is None:
      init = jax.jit(predictor.init_params, out_shardings=self._param_shardings)
      return init(rng, batch)
    logging.info("Fine-tuning from parameters of %s", path)
    return checkpoints.load_params(
        path,
        self.experiment.model,
        self.experiment.task,
        target=abstract_params,
        field="init_checkpoint",
    ).params

  def _meta(self, step: int) -> dict:
    """For people reading a checkpoint: where in the schedule it resumes."""
    span = self.experiment.schedule.span_at(step)
    return {
        "experiment": self.experiment.name,
        "global_step": step,
        "next_phase": span.phase.name if span else None,
        "next_rollout_steps": span.phase.rollout_steps if span else None,
        "saved_on_mesh": dict(self._mesh.shape),
    }

  # -- Setup --------------------------------------------------------------

  def setup(self) -> RunState:
    """Builds everything the loop reads, restoring the newest intact checkpoint.

    After it, `evaluate(self.run_state.state.params)` works outside a run.
    """
    experiment, workdir = self.experiment, self.workdir
    schedule = experiment.schedule
    os.makedirs(workdir, exist_ok=True)
    checkpointing.quiet_orbax()
    cache_dir = experiment.train.compilation_cache_dir
    if cache_dir:
      jax.config.update(
          "jax_compilation_cache_dir", os.path.join(os.path.abspath(workdir), cache_dir)
      )
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    self._eval_whole, self._eval_cache, self._eval_steps = None, {}, {}
    self._abstract_state, self.run_state = None, None

    # Lay out the device mesh of the phase the run resumes in; the global
    # batch splits over its data axis. Phases may split examples otherwise.
    checkpointer = checkpointing.Checkpointer(workdir, experiment.checkpoint)
    expected_step = checkpointer.latest_step() or 0
    self._use_layout(self._span_or_last(expected_step).phase)
    sharding_lib.per_process_batch_size(experiment.data.global_batch_size, self._mesh)
    logging.info("Mesh %s over %d process(es)", dict(self._mesh.shape), jax.process_count())

    # Normalisation statistics and the model.
    self._stats = self._data.normalization_stats(
        experiment.data, experiment.task, experiment.stats_dir
    )
    predictor = self._predictor(None)

    # The optimiser, with the learning rate following the global step.
    tx = optimizer_lib.make_optimizer(experiment.optimizer)
    learning_rate_fn = optimizer_lib.schedule_learning_rate(schedule)

    # The first batch gives the shapes to initialise (or restore) with; it is
    # the batch of the step the run resumes at, so the loop trains on it.
    rng = jax.random.PRNGKey(experiment.seed)
    init_rng, state_rng = jax.random.split(rng)
    iterator, first_batch = self._first_batch(expected_step, checkpointer)
    abstract_state = jax.eval_shape(
        lambda b: train_step_lib.create_state(predictor.init_params(init_rng, b), tx, state_rng),
        first_batch,
    )
    self._abstract_state = abstract_state
    _, state_shardings = self._layout(self._mesh_config)
    self._param_shardings = state_shardings.params
    # A checkpoint restores onto this mesh whatever mesh it was saved on.
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abstract_state,
        state_shardings,
    )

    # Restore the newest intact checkpoint, or initialise (randomly or
    # fine-tuning); damaged checkpoints are moved aside on the way.
    step, state = checkpointer.restore_latest_intact(target)
    if step is not None:
      logging.info("Resumed from checkpoint at global step %d (%s)", step, self._meta(step))
    else:
      step = 0
      try:
        params = self._initial_params(predictor, init_rng, first_batch, target.params)
      except FileNotFoundError as e:
        raise FileNotFoundError(f"init_checkpoint={experiment.init_checkpoint}: {e}") from e
      state = jax.jit(
          lambda p: train_step_lib.create_state(p, tx, state_rng), out_shardings=state_shardings
      )(params)
      parameter_overview.log_parameter_overview(state.params)

    self.run_state = RunState(
        mesh=self._mesh,
        state_shardings=state_shardings,
        stats=self._stats,
        tx=tx,
        learning_rate_fn=learning_rate_fn,
        checkpointer=checkpointer,
        state=state,
        step=step,
        iterator=iterator,
        first_batch=first_batch,
        num_params=int(sum(np.prod(x.shape) for x in jax.tree.leaves(abstract_state.params))),
    )
    run = self.run_state
    if step != expected_step:  # An older checkpoint: its batches come first.
      _close(run.iterator)
      self._use_layout(self._span_or_last(step).phase)
      run.iterator, run.first_batch = self._first_batch(step, checkpointer)
    if schedule.span_at(step) is None:
      _close(run.iterator)
      run.iterator, run.first_batch = None, None  # Nothing left to train.
    return self.run_state

  def _span_or_last(self, step: int) -> PhaseSpan:
    schedule = self.experiment.schedule
    return schedule.span_at(step) or schedule.spans()[-1]

  def _first_batch(self, step: int, checkpointer: checkpointing.Checkpointer):
    """(iterator, its first batch) at `step` (past the end: the last phase's),
    continuing from the pipeline state saved at `step` when there is one."""
    schedule = self.experiment.schedule
    span = self._span_or_last(step)
    iterator = self._train_iterator(span, step if schedule.span_at(step) else span.start)
    if span.start < step < span.end and hasattr(iterator, "set_state"):
      # Saved mid-phase, by this phase's pipeline (a phase-end one is not).
      checkpointer.restore_iterator(step, iterator)
    return iterator, self._pull(iterator, span.phase)

  def _pull(self, iterator, phase: Phase):
    """The iterator's next batch on the devices; keeps the state before it."""
    self._pending_state = iterator.get_state() if hasattr(iterator, "get_state") else None
    return self._global(next(iterator), phase)

  def _iterator_state(self):
    """The pipeline state whose next batch is the next step's, or None."""
    run = self.run_state
    if run.first_batch is not None:  # Already read: the state before it.
      return self._pending_state
    return run.iterator.get_state() if hasattr(run.iterator, "get_state") else None

  def train_step_for(self, phase: Phase):
    """The jitted step of a phase; phases with the same precision and remat
    share one (and its executable when the rollout length matches)."""
    run = self.run_state
    phase_predictor = self._predictor(phase)
    key = id(phase_predictor)
    if key not in self._train_steps:
      batch_shardings = None  # Split over the data axis.
      if hasattr(phase_predictor, "place_batch"):  # As `_global` places it.
        batch_shardings = phase_predictor.batch_shardings(self._batch_shapes)
      self._train_steps[key] = train_step_lib.jit_train_step(
          train_step_lib.make_train_step(
              sharding_lib.data_parallel(phase_predictor.loss, run.mesh),
              run.tx,
              run.learning_rate_fn,
          ),
          run.state_shardings,
          run.mesh,
          batch_shardings,
          host_targets=phase_predictor.model.remat.host_targets,
          host_inputs=phase_predictor.model.remat.host_inputs,
      )
    return self._train_steps[key]

  def _next_batch(self, span: PhaseSpan, step: int):
    run = self.run_state
    if run.first_batch is not None:
      batch, run.first_batch = run.first_batch, None
      return batch
    if run.iterator is None:
      run.iterator = self._train_iterator(span, step)
    return self._global(next(run.iterator), span.phase)

  def _prefetch(self, span: PhaseSpan, step: int) -> None:
    """Reads `step`'s batch and starts its transfer while the step before runs."""
    run = self.run_state
    if step < span.end and run.iterator is not None and run.first_batch is None:
      run.first_batch = self._pull(run.iterator, span.phase)

  def _nonfinite_error(
      self, phase: Phase, step: int, in_a_row: int, learning_rate: float
  ) -> NonFiniteError:
    """Names the phase, steps and rate at fault, and a finite checkpoint."""
    checkpointer = self.run_state.checkpointer
    limit = self.experiment.train.max_nonfinite_in_a_row
    good = checkpointer.latest_step()
    where = (
        f"the last good checkpoint is step {good} in "
        f"{checkpointer.directory} (every saved state is finite)"
        if good is not None
        else "no checkpoint was written before it (nothing to resume from)"
    )
    return NonFiniteError(
        f"training diverged: {in_a_row} non-finite steps in a row (train."
        f"max_nonfinite_in_a_row={limit}), global steps {step - in_a_row + 1}"
        f"-{step} in phase {phase.name!r} at learning rate "
        f"{learning_rate:.3g}; {where}; lower that phase's learning rate "
        f"(fiddler:set_phase('{phase.name}',lr=...)) and rerun"
    )

  # -- The run ------------------------------------------------------------

  def run(self) -> dict:
    """Runs (or resumes) the schedule to the end; returns final metrics."""
    with workdir_lib.locked(self.workdir, jax.process_index()):
      try:
        return self._run()
      finally:  # Whatever ended the run, the reader threads and workers stop.
        if self.run_state is not None:
          _close(self.run_state.iterator)

  def _run(self) -> dict:
    experiment, workdir = self.experiment, self.workdir
    schedule = experiment.schedule
    start_time = time.time()

    # Build the mesh, statistics, model, optimiser and state (restored or new).
    run = self.setup()
    checkpointer = run.checkpointer
    step = run.step

    # Create the metric writer: TensorBoard event files and the console.
    writer = metric_writers.create_default_writer(
        workdir, just_logging=jax.process_index() > 0, asynchronous=True
    )
    writer.write_hparams({"num_params": run.num_params})

    # Hooks: progress with ETAs, and a profiler trace on request.
    report_progress = progress_lib.ScheduleProgress(
        schedule,
        writer=writer,
        every_steps=experiment.log_every_steps,
        step_seconds=self._step_seconds,
    )
    hooks = [report_progress]
    if experiment.train.profile_steps and jax.process_index() == 0:
      hooks.append(
          periodic_actions.Profile(
              logdir=workdir,
              num_profile_steps=experiment.train.profile_steps,
              first_profile=experiment.train.profile_first_step,
              every_secs=None,
              profile_duration_ms=None,
          )
      )

    train_metrics = metrics_lib.TrainMetrics.empty()
    max_nonfinite = experiment.train.max_nonfinite_in_a_row
    first_span = schedule.span_at(step)
    with preemption.StopSignal() as stop:
      # The outer loop runs phases; the inner one their steps.
      for span in schedule.spans()[first_span.index if first_span else len(schedule.phases) :]:
        phase = span.phase
        logging.info(
            "Phase %s (%d/%d): steps [%d, %d), rollout %d, start %d",
            phase.name,
            span.index + 1,
            len(schedule.phases),
            span.start,
            span.end,
            phase.rollout_steps,
            step,
        )
        self._use_layout(phase)
        train_step = self.train_step_for(phase)
        eval_every = experiment_lib.phase_settings(experiment, phase).eval_every_steps
        while step < span.end:
          # Take one step; a non-finite one changes only its counters.
          batch = self._next_batch(span, step)
          with jax.profiler.StepTraceAnnotation("train", step_num=step):
            run.state, step_metrics = train_step(run.state, batch)
          step += 1
          self._prefetch(span, step)
          # Reading back the counters waits for the step: with several
          # devices (and gloo across processes) this also avoids hangs.
          step_metrics, in_a_row, total_nonfinite = metrics_lib.to_host(
              (step_metrics, run.state.nonfinite_in_a_row, run.state.nonfinite_total)
          )
          train_metrics = train_metrics.merge(metrics_lib.TrainMetrics.from_step(step_metrics))

          # Stop a divergence, naming a checkpoint that is finite.
          if in_a_row:
            logging.warning(
                "Skipped step %d: non-finite loss, gradient or "
                "update (%d in a row, %d in total)",
                step,
                in_a_row,
                total_nonfinite,
            )
          if in_a_row >= max_nonfinite:
            checkpointer.close()
            writer.flush()
            raise self._nonfinite_error(
                phase, step, int(in_a_row), float(step_metrics["learning_rate"])
            )
          for hook in hooks:
            hook(step)

          # Write the averaged training metrics every log_every_steps.
          if step % experiment.log_every_steps == 0 or step == span.end:
            scalars = metrics_lib.flatten(train_metrics.compute(), "train")
            scalars["train/nonfinite_total"] = float(total_nonfinite)
            scalars["train/rollout_steps"] = float(phase.rollout_steps)
            writer.write_scalars(step, scalars)
            train_metrics = metrics_lib.TrainMetrics.empty()

          # Evaluate on the held-out split every eval_every steps.
          if eval_every and step % eval_every == 0:
            with report_progress.timed("eval"):
              writer.write_scalars(step, self.evaluate(run.state.params))

          # Checkpoint on the cadence and at phase ends, never mid-streak.
          if not in_a_row:
            checkpointer.save(
                run.state,
                self._meta(step),
                force=step == span.end,
                data_state=self._iterator_state(),
            )

          # On SIGTERM/SIGINT (any process), checkpoint and exit.
          signum = stop.any_process()
          if signum:
            if in_a_row:
              logging.warning(
                  "Stopping during a non-finite streak: keeping " "the last good checkpoint"
              )
            else:
              checkpointer.save(
                  run.state, self._meta(step), force=True, data_state=self._iterator_state()
              )
            checkpointer.close()
            writer.flush()
            logging.warning(
                "Stopped by signal %d at global step %d; rerun " "with the same workdir to resume",
                signum,
                step,
            )
            raise Preempted(128 + signum)
        _close(run.iterator)
        run.iterator = None
        logging.info("Finished phase %s at global step %d", phase.name, step)

    # Final evaluation on the held-out split, against persistence.
    checkpointer.save(run.state, self._meta(step), force=True)
    checkpointer.close()
    self.state = run.state
    final = self.evaluate(run.state.params)
    writer.write_scalars(step, final)
    writer.flush()
    result = {
        "global_step": step,
        "nonfinite_total": int(metrics_lib.to_host(run.state.nonfinite_total)),
        "wall_time_s": time.time() - start_time,
    }
    result.update(final)
    logging.vlog(1, "Final evaluation at step %d: %s", step, result)
    return result
