"""The Grain input pipelines: order, resume (state and step), process shards,
worker processes, eval batches and their windows."""

import dataclasses

from absl import flags
import numpy as np
import pytest

from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import grain_pipeline
from graphcast_fdl.data import pipeline
from graphcast_fdl.model import batch as batch_lib


def _equal(a, b):
  return all(
      np.array_equal(getattr(a, p)[k], getattr(b, p)[k])
      for p in ("inputs", "targets", "forcings")
      for k in getattr(a, p)
  )


def _take(iterator, n):
  out = [next(iterator) for _ in range(n)]
  iterator.close()
  return out


def _parse_flags():
  if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (app.run parses them).
    flags.FLAGS.mark_as_parsed()


def test_batch_layout(tiny_data):
  batch = _take(data.train_batches(tiny_data, tiny_task(), 3, 0, 0, 1), 1)[0]
  assert batch.inputs["temperature"].shape == (4, 2, 3, 31, 60)
  assert batch.inputs["land_sea_mask"].shape == (4, 31, 60)
  assert batch.inputs["day_progress_sin"].shape == (4, 2, 60)
  assert batch.targets["total_precipitation_6hr"].shape == (4, 3, 31, 60)
  assert batch.forcings["year_progress_cos"].shape == (4, 3)
  assert set(batch.forcings) == set(tiny_task().forcing_variables)
  assert all(v.dtype == np.float32 for v in batch.inputs.values())


def test_deterministic_and_resumable_by_step(tiny_data):
  task = tiny_task()
  first = _take(data.train_batches(tiny_data, task, 1, 0, 0, 1), 4)
  again = _take(data.train_batches(tiny_data, task, 1, 0, 0, 1), 4)
  resumed = _take(data.train_batches(tiny_data, task, 1, 2, 0, 1), 2)
  assert all(_equal(a, b) for a, b in zip(first, again))
  assert _equal(first[2], resumed[0]) and _equal(first[3], resumed[1])
  assert not _equal(first[0], first[1])
  other_seed = dataclasses.replace(tiny_data, seed=4)
  assert not _equal(first[0], _take(data.train_batches(other_seed, task, 1, 0, 0, 1), 1)[0])


def test_each_epoch_sees_every_window_once_in_a_new_order():
  order = grain_pipeline.window_order(10, 0, 5, 0, 1)
  epochs = [np.concatenate([order[2 * e], order[2 * e + 1]]) for e in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(10))
  assert not np.array_equal(epochs[0], epochs[1])


def test_processes_take_contiguous_shares_of_each_global_batch():
  whole = grain_pipeline.window_order(7, 3, 4, 0, 1)
  halves = [grain_pipeline.window_order(7, 3, 4, i, 2) for i in (0, 1)]
  for step in (0, 5, 10**9):
    np.testing.assert_array_equal(np.concatenate([h[step] for h in halves]), whole[step])
  # One example per process (global batch 1, or 2 over 2 processes).
  singles = [grain_pipeline.window_order(7, 3, 2, i, 2) for i in (0, 1)]
  whole = grain_pipeline.window_order(7, 3, 2, 0, 1)
  for step in (0, 9, 10**12):
    np.testing.assert_array_equal(np.concatenate([h[step] for h in singles]), whole[step])
  assert grain_pipeline.window_order(7, 3, 1, 0, 1)[10**12].shape == (1,)
  with pytest.raises(ValueError, match="global_batch_size=4 does not split over 3"):
    grain_pipeline.window_order(7, 3, 4, 0, 3)


def test_two_hosts_union_is_one_host(tiny_data):
  task = tiny_task()
  whole = _take(data.train_batches(tiny_data, task, 2, 5, 0, 1), 1)[0]
  halves = [_take(data.train_batches(tiny_data, task, 2, 5, i, 2), 1)[0] for i in (0, 1)]
  for part in ("inputs", "targets", "forcings"):
    for key, value in getattr(whole, part).items():
      assert getattr(halves[0], part)[key].shape[0] == 2
      joined = np.concatenate([getattr(h, part)[key] for h in halves])
      np.testing.assert_array_equal(joined, value)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_state_resumes_the_stream_exactly(tiny_data, num_workers):
  _parse_flags()
  task = tiny_task()
  cfg = dataclasses.replace(tiny_data, num_workers=num_workers, transfer_dtype="bfloat16")
  reference = _take(data.train_batches(cfg, task, 1, 3, 0, 1), 5)
  iterator = data.train_batches(cfg, task, 1, 3, 0, 1)
  _take(iterator, 2)
  state = iterator.get_state()
  resumed = data.train_batches(cfg, task, 1, 0, 0, 1)  # Elsewhere: set_state moves it.
  resumed.set_state(state)
  assert resumed.step == 5
  assert all(_equal(a, b) for a, b in zip(_take(resumed, 3), reference[2:], strict=True))
  # Another worker count cannot take Grain's state: the step alone positions it.
  other = data.train_batches(
      dataclasses.replace(cfg, num_workers=1 - min(num_workers, 1)), task, 1, 0, 0, 1
  )
  other.set_state(state)
  assert _equal(_take(other, 1)[0], reference[2])


def test_state_across_a_change_of_process_layout(tiny_data):
  # A run saved by 2 processes (or spatial groups: 2 blocks of each global
  # batch) and resumed by 1, or the other way, or by the other block,
  # continues with the same global examples of each step.
  task = tiny_task()
  whole = _take(data.train_batches(tiny_data, task, 1, 3, 0, 1), 3)
  halves = [_take(data.train_batches(tiny_data, task, 1, 3, i, 2), 3) for i in (0, 1)]
  two = data.train_batches(tiny_data, task, 1, 3, 0, 2)
  _take(two, 2)
  one = data.train_batches(tiny_data, task, 1, 0, 0, 1)
  one.set_state(two.get_state())
  assert one.step == 5
  assert all(_equal(a, b) for a, b in zip(_take(one, 1), whole[2:]))
  other_block = data.train_batches(tiny_data, task, 1, 0, 1, 2)
  other_block.set_state(two.get_state())
  assert _equal(_take(other_block, 1)[0], halves[1][2])
  single = data.train_batches(tiny_data, task, 1, 3, 0, 1)
  _take(single, 1)
  back = data.train_batches(tiny_data, task, 1, 0, 1, 2)
  back.set_state(single.get_state())
  assert back.step == 4 and _equal(_take(back, 1)[0], halves[1][1])


def test_eval_batches_fixed_and_match_xarray_windows(tiny_data):
  task = tiny_task()
  batches = data.eval_batches(tiny_data, task, 2, 2)
  assert _equal(batches[1], data.eval_batches(tiny_data, task, 2, 2)[1])
  times = data.example_times(tiny_data, task, 2, 2)
  assert times.shape == (2, 4)
  inputs, targets, forcings = data.example_window(
      tiny_data, task, tiny_data.eval_split, times[1, 3], 2
  )
  assert inputs.time.values.astype("timedelta64[h]").astype(int).tolist() == [-6, 0]
  assert targets.time.values.astype("timedelta64[h]").astype(int).tolist() == [6, 12]
  window = batch_lib.batch_from_datasets(inputs, targets, forcings)
  for part in ("inputs", "targets", "forcings"):
    for key, value in getattr(window, part).items():
      np.testing.assert_array_equal(value[0], getattr(batches[1], part)[key][3])


def test_max_rollout_and_too_long_rollout(tiny_data):
  task = tiny_task()
  assert data.max_rollout_steps(tiny_data, task, "validation") == 2 * 4 - 2
  with pytest.raises(data.DataError, match="rollout 7"):
    data.eval_batches(tiny_data, task, 7, 1)
  with pytest.raises(data.DataError, match="rollout 30"):
    data.train_batches(tiny_data, task, 30, 0, 0, 1)


def test_precip_out_task_and_missing_variable(tiny_data):
  task = tiny_task(
      input_variables=tuple(
          v for v in tiny_task().input_variables if v != "total_precipitation_6hr"
      )
  )
  batch = data.eval_batches(tiny_data, task, 1, 1)[0]
  assert "total_precipitation_6hr" not in batch.inputs
  assert "total_precipitation_6hr" in batch.targets
  bad = tiny_task(target_variables=tiny_task().target_variables + ("sea_surface_temperature",))
  with pytest.raises(data.DataError, match="sea_surface_temperature"):
    data.eval_batches(tiny_data, bad, 1, 1)


def test_loader_reads_the_windows_the_order_names(tiny_data):
  task = tiny_task()
  maker = pipeline.example_maker(tiny_data, task, tiny_data.train_split, 1)
  windows = grain_pipeline.window_order(len(maker.starts), tiny_data.seed, 4, 0, 1)[6]
  batch = _take(data.train_batches(tiny_data, task, 1, 6, 0, 1), 1)[0]
  for row, window in enumerate(windows):
    example = maker.example(int(maker.starts[window]))
    for key, value in example.inputs.items():
      np.testing.assert_array_equal(batch.inputs[key][row], value, err_msg=key)


def test_evaluate_command_reads_its_batches_through_grain(tiny_data):
  # `evaluate` (the command) loads each chunk of initial times in Grain's
  # reader threads, ahead of the rollout: the same arrays, in order.
  from graphcast_fdl.evaluation import windows  # pylint: disable=g-import-not-at-top

  task = tiny_task()
  frames = data.split_frames(tiny_data, task, tiny_data.eval_split)
  indices = windows.init_indices(frames, task, 2, 5)
  chunks = [indices[:2], indices[2:4], indices[4:]]
  loaded = list(windows.load_batches(frames, task, chunks, 2, prefetch=2))
  assert len(loaded) == 3
  for chunk, (batch, template, valid) in zip(chunks, loaded):
    direct, direct_template, direct_valid = windows.make_examples(frames, task, chunk, 2)
    assert _equal(batch, direct)
    np.testing.assert_array_equal(valid, direct_valid)
    assert template.identical(direct_template)


def test_record_source_is_a_grain_data_source(tiny_data):
  # Our direct reader behind Grain's RandomAccessDataSource protocol: the
  # same records as Grain's ArrayRecordDataSource (the library), by index,
  # also after pickling (worker processes).
  import pickle  # pylint: disable=g-import-not-at-top

  import grain  # pylint: disable=g-import-not-at-top

  frames = data.split_frames(tiny_data, tiny_task(), tiny_data.train_split)
  source = frames.records
  assert isinstance(source, grain.sources.RandomAccessDataSource) and source.direct
  library = grain.sources.ArrayRecordDataSource(list(source._instructions))  # pylint: disable=protected-access
  assert len(source) == len(library) == len(frames)
  dataset = grain.MapDataset.source(pickle.loads(pickle.dumps(source)))
  for index in (0, 3, len(frames) - 1):
    assert dataset[index] == library[index]
  with pytest.raises(IndexError):
    source[len(source)]
  # Frames are a Grain source too: frame i by index.
  assert isinstance(frames, grain.sources.RandomAccessDataSource)
  frame = grain.MapDataset.source(frames)[2]
  for name, value in frames.frame(2).items():
    np.testing.assert_array_equal(frame[name], value, err_msg=name)
