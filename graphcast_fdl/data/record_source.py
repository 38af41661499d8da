"""A TFDS split's array_record files as a Grain data source.

Grain reads from any `RandomAccessDataSource` (a length and records by
index). This one serves the records of one split: through our direct reader
(`record_reader`, one preadv from the page cache) where the files are in our
uncompressed one-record-per-chunk layout, otherwise through Grain's own
`ArrayRecordDataSource` (the array_record library). `Frames` of a TFDS split
read their frames from it, and the fast assembly asks it where each field of
a record lies (`locate`), to read the field straight into its batch slot.
It pickles (open files are reopened on first use), so Grain's worker
processes can take it.
"""

from __future__ import annotations

import threading

import grain

from graphcast_fdl.data import record_reader


def _count(instruction) -> int:
  take = instruction.take
  return instruction.examples_in_shard - instruction.skip if take == -1 else take


class RecordSource:
  """Grain `RandomAccessDataSource` of serialized records (bytes), by index.

  Args:
    file_instructions: the split's files (TFDS `FileInstruction`s: filename,
      skip, take, examples_in_shard), in record order.
  """

  def __init__(self, file_instructions):
    self._instructions = tuple(file_instructions)
    self._length = sum(_count(i) for i in self._instructions)
    self._reset()

  def _reset(self):
    self._files = None  # [(first index, RecordFile)], or () for other layouts.
    self._library = None
    self._lock = threading.Lock()

  def __getstate__(self):
    return {"_instructions": self._instructions, "_length": self._length}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._reset()

  def __len__(self) -> int:
    return self._length

  def __repr__(self) -> str:  # Grain names a source by it (checkpoints, logs).
    names = [i.filename for i in self._instructions]
    return f"RecordSource({len(self)} records in {names})"

  def files(self):
    """[(first index, RecordFile)] of the direct reader, or () where a file is
    not in our layout or is read in part (the library reads those)."""
    with self._lock:
      if self._files is None:
        files, first = [], 0
        for instruction in self._instructions:
          whole = not instruction.skip and instruction.take in (-1, instruction.examples_in_shard)
          opened = (
              record_reader.open_records(instruction.filename, instruction.examples_in_shard)
              if whole
              else None
          )
          if opened is None:
            files = ()
            break
          files.append((first, opened))
          first += len(opened)
        self._files = files if first == len(self) else ()
    return self._files

  @property
  def direct(self) -> bool:
    """Whether records are read by our direct reader."""
    return bool(self.files())

  def locate(self, index: int):
    """(RecordFile, index in that file) of record `index` (direct reader only)."""
    files = self.files()
    if not 0 <= index < len(self):
      raise IndexError(f"record {index} of {len(self)}")
    for first, file in reversed(files):
      if index >= first:
        return file, index - first
    raise ValueError("the records are not in our layout: no direct reader")

  def __getitem__(self, index: int) -> bytes:
    index = int(index)
    if self.direct:
      file, local = self.locate(index)
      return file.read(file.starts[local], file.sizes[local])
    with self._lock:
      if self._library is None:
        self._library = grain.sources.ArrayRecordDataSource(list(self._instructions))
    return self._library[index]
