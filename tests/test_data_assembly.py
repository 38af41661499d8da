"""The in-place batch and the direct record reader against the reference paths."""

import dataclasses

import numpy as np
import pytest

from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import examples
from graphcast_fdl.data import record_reader
from graphcast_fdl.data import record_source
from graphcast_fdl.model.batch import Batch
from test_data_era5 import TASK, _store
from array_record.python import array_record_module
from tensorflow_datasets.core.utils.shard_utils import FileInstruction


def _stacked(maker, starts):
  """The reference: examples cut one by one, then stacked."""
  cut = [maker.example(int(s)) for s in starts]
  return Batch(
      **{
          part: {k: np.stack([getattr(e, part)[k] for e in cut]) for k in getattr(cut[0], part)}
          for part in ("inputs", "targets", "forcings")
      }
  )


def _assert_batches_equal(a, b):
  for part in ("inputs", "targets", "forcings"):
    ours, ref = getattr(a, part), getattr(b, part)
    assert list(ours) == list(ref)
    for key in ref:
      assert ours[key].dtype == ref[key].dtype and ours[key].shape == ref[key].shape, key
      np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)


@pytest.mark.parametrize("levels,rollout", [((500, 850, 1000), 1), ((1000, 500), 3)])
def test_batch_in_place_equals_stacked_examples(tiny_data, levels, rollout):
  frames = data.split_frames(tiny_data, tiny_task(), "train")
  assert frames.records.direct
  maker = examples.ExampleMaker(
      frames, dataclasses.replace(tiny_task(), pressure_levels=levels), rollout
  )
  starts = maker.starts[[0, 5, 5, len(maker.starts) - 1]]
  _assert_batches_equal(maker.batch(starts), _stacked(maker, starts))


def test_batch_in_place_from_a_zarr_store(tmp_path):
  path = str(tmp_path / "s.zarr")
  _store().to_zarr(path)
  cfg = data.DataConfig(source="zarr", path=path, resolution=10.0, train_split="all")
  maker = examples.ExampleMaker(data.split_frames(cfg, TASK, "all"), TASK, 2)
  _assert_batches_equal(maker.batch([0, 7]), _stacked(maker, [0, 7]))


def test_direct_reader_gives_the_library_bytes(tiny_data):
  frames = data.split_frames(tiny_data, tiny_task(), "validation")
  for first, file in frames.records.files():
    library = array_record_module.ArrayRecordReader(file.path)
    assert len(file) == library.num_records()
    for i in range(len(file)):
      assert file.read(file.starts[i], file.sizes[i]) == library.read([i])[0]
  reference = frames._raw(3)  # pylint: disable=protected-access
  direct = frames.frame(3)
  for name in frames.variables:
    np.testing.assert_array_equal(direct[name], reference[name])


def test_other_layouts_fall_back_to_the_library(tmp_path):
  path = str(tmp_path / "grouped.array_record")
  writer = array_record_module.ArrayRecordWriter(path, "group_size:2")
  for i in range(4):
    writer.write(bytes([i]) * 100)
  writer.close()
  assert record_reader.open_records(path, 4) is None
  path = str(tmp_path / "ours.array_record")
  writer = array_record_module.ArrayRecordWriter(path, "group_size:1,uncompressed")
  records = [bytes([i]) * (70_000 * i + 1) for i in range(4)]  # Across block headers.
  for record in records:
    writer.write(record)
  writer.close()
  file = record_reader.open_records(path, 4)
  assert [file.read(s, n) for s, n in zip(file.starts, file.sizes)] == records
  assert record_reader.open_records(path, 5) is None
  # As a Grain data source: our reader for ours, the library for the other.
  ours = record_source.RecordSource([FileInstruction(path, 0, -1, 4)])
  grouped = record_source.RecordSource(
      [FileInstruction(str(tmp_path / "grouped.array_record"), 1, 2, 4)]
  )
  assert ours.direct and [ours[i] for i in range(4)] == records
  assert not grouped.direct and len(grouped) == 2
  assert [grouped[i] for i in range(2)] == [bytes([1]) * 100, bytes([2]) * 100]


def test_batch_arrays_are_reused_only_when_released(tiny_data):
  maker = examples.ExampleMaker(data.split_frames(tiny_data, tiny_task(), "train"), tiny_task(), 1)
  first = maker.batch([0, 1])
  kept = {k: v.copy() for k, v in first.inputs.items()}
  view = first.targets["temperature"][0]  # A view alone keeps its array busy.
  address = first.inputs["temperature"].ctypes.data
  second = maker.batch([4, 5])
  assert second.inputs["temperature"].ctypes.data != address
  for key, value in kept.items():
    np.testing.assert_array_equal(first.inputs[key], value)
  del first, second
  third = maker.batch([6, 7])  # The first set is still held through `view`.
  assert third.inputs["temperature"].ctypes.data != address
  assert not np.shares_memory(third.targets["temperature"], view)
  del view, third
  fourth = maker.batch([6, 7])
  assert fourth.inputs["temperature"].ctypes.data == address
  _assert_batches_equal(fourth, _stacked(maker, [6, 7]))


def test_remote_record_files_are_left_to_the_library():
  assert record_reader.open_records("gs://bucket/x.array_record-00000-of-00001", 1) is None
