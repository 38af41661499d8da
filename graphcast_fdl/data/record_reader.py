"""Reads float fields of our uncompressed array_record frames straight into arrays.

The array_record library reads a 22 MB 1 deg frame at ~0.2 GB/s on this
machine (it hashes and copies every chunk; `benchmarks/RESULTS.md`), 20x
slower than reading the same file from the page cache. Our builders write
one uncompressed record per chunk (`tfds_layout.uncompressed_array_record`),
so each float field lies in the file as plain bytes, cut only by riegeli's
24-byte block header every 64 KiB. This reader finds the records once (a
walk over the 40-byte chunk headers, per the riegeli/records format
specification), finds each field in a record by walking its tf.Example
framing (a few small reads), then hands `os.preadv` the destination arrays,
with a scratch buffer for each block header in between: the bytes travel
once, from the page cache into the batch. Files in any other layout
(compressed, several records per chunk) give `None` from `open_records`;
callers fall back to the library reader.
"""

from __future__ import annotations

import os
import struct

BLOCK = 1 << 16
BLOCK_HEADER = 24
USABLE = BLOCK - BLOCK_HEADER
CHUNK_HEADER = 40
_SIMPLE_CHUNK = ord("r")
_IOV_MAX = 1000  # Linux allows 1024 buffers per preadv call.
_SCRATCH = bytearray(BLOCK_HEADER)


def _usable(pos: int) -> int:
  """File position -> position in the stream without block headers."""
  return (pos // BLOCK) * USABLE + max(pos % BLOCK - BLOCK_HEADER, 0)


def _file_pos(usable: int) -> int:
  return (usable // USABLE) * BLOCK + BLOCK_HEADER + usable % USABLE


def _segments(start: int, size: int):
  """[(file position, length)] of a usable range [start, start + size)."""
  out = []
  while size > 0:
    n = min(size, USABLE - start % USABLE)
    out.append((_file_pos(start), n))
    start += n
    size -= n
  return out


def _varint(buf, pos: int) -> tuple[int, int]:
  value = shift = 0
  while True:
    byte = buf[pos]
    value |= (byte & 0x7F) << shift
    pos += 1
    if byte < 0x80:
      return value, pos
    shift += 7


class RecordFile:
  """Records of one uncompressed, one-record-per-chunk array_record file."""

  def __init__(self, path: str, fd: int, starts: list[int], sizes: list[int]):
    self.path = path
    self._fd = fd
    self.starts = starts  # Usable-stream offset of each record's first byte.
    self.sizes = sizes

  def __len__(self) -> int:
    return len(self.starts)

  def close(self) -> None:
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None

  def __del__(self):
    self.close()

  def read(self, start: int, size: int) -> bytes:
    """`size` bytes at usable offset `start`."""
    out = bytearray(size)
    self.read_into(start, memoryview(out))
    return bytes(out)

  def read_into(self, start: int, dest: memoryview) -> None:
    """Fills `dest` (a writable byte view) from usable offset `start`.

    Consecutive segments are a block header apart in the file, so one preadv
    reads a run of them, the headers landing in a scratch buffer.
    """
    segments, offset = [], 0
    for pos, n in _segments(start, len(dest)):
      segments.append((pos, dest[offset : offset + n]))
      offset += n
    for i in range(0, len(segments), _IOV_MAX // 2):
      run = segments[i : i + _IOV_MAX // 2]
      buffers = [run[0][1]]
      for _, view in run[1:]:
        buffers += [_SCRATCH, view]
      expected = sum(len(b) for b in buffers)
      got = os.preadv(self._fd, buffers, run[0][0])
      if got != expected:
        raise OSError(f"{self.path}: short read ({got} of {expected} bytes " f"at {run[0][0]})")

  def fields(self, index: int) -> dict[str, tuple[int, int]]:
    """{feature name: (usable offset, size)} of the payload of each
    tf.Example feature of record `index` (the bytes, or the packed int64s)."""
    start, size = self.starts[index], self.sizes[index]
    end = start + size
    head = self.read(start, min(16, size))
    if head[0] != 0x0A:
      raise ValueError("not a tf.Example")
    _, pos = _varint(head, 1)  # Example.features; its map entries follow.
    pos += start
    out = {}
    while pos < end:
      buf = self.read(pos, min(192, end - pos))
      if buf[0] != 0x0A:
        raise ValueError(f"unexpected field tag {buf[0]} in features")
      entry_size, p = _varint(buf, 1)
      entry_end = pos + p + entry_size
      if buf[p] != 0x0A:
        raise ValueError("map entry without a key first")
      key_size, p = _varint(buf, p + 1)
      key = bytes(buf[p : p + key_size]).decode()
      p += key_size
      if buf[p] != 0x12:
        raise ValueError(f"feature {key!r} without a value")
      _, p = _varint(buf, p + 1)
      _, p = _varint(buf, p + 1)  # The bytes_list / int64_list message.
      if buf[p] not in (0x0A,):
        raise ValueError(f"feature {key!r}: unexpected list encoding")
      payload, p = _varint(buf, p + 1)
      out[key] = (pos + p, payload)
      pos = entry_end
    return out

  def int64(self, field: tuple[int, int]) -> int:
    """The first value of a packed int64_list payload."""
    return _varint(self.read(*field), 0)[0]


def open_records(path: str, num_records: int) -> RecordFile | None:
  """Indexes the first `num_records` records of a file from its chunk headers.

  Returns None when the file is not a local file in our layout (compressed,
  or several records per chunk) or does not hold that many records.
  """
  try:
    fd = os.open(os.fspath(path), os.O_RDONLY)  # gs:// etc.: the library reads those.
  except (OSError, TypeError):
    return None
  file_size = os.fstat(fd).st_size
  index = RecordFile(path, fd, [], [])
  chunk = 0
  try:
    while len(index) < num_records and chunk + CHUNK_HEADER <= file_size:
      base = _usable(chunk)
      header = bytearray(min(CHUNK_HEADER + 32, _usable(file_size) - base))
      index.read_into(base, memoryview(header))
      (data_size,) = struct.unpack_from("<Q", header, 8)
      chunk_type = header[24]
      records = int.from_bytes(header[25:32], "little")
      if chunk_type == _SIMPLE_CHUNK and records:
        if records != 1 or header[CHUNK_HEADER] != 0:  # Grouped or compressed.
          raise ValueError(path)
        sizes_size, p = _varint(header, CHUNK_HEADER + 1)
        record_size, _ = _varint(header, p)
        if p + sizes_size - CHUNK_HEADER + record_size != data_size:
          raise ValueError(path)
        index.starts.append(base + p + sizes_size)
        index.sizes.append(record_size)
      elif records:  # A transposed chunk.
        raise ValueError(path)
      chunk = _chunk_end(chunk, data_size, records)
  except (IndexError, OSError, ValueError, struct.error):
    index.starts = []
  if len(index) != num_records:
    index.close()
    return None
  return index


def _chunk_end(begin: int, data_size: int, num_records: int) -> int:
  """Where the next chunk begins (the formula of the format specification)."""
  size = CHUNK_HEADER + data_size
  overhead = (size + (begin + USABLE - 1) % BLOCK) // USABLE
  end = begin + size + overhead * BLOCK_HEADER
  pos = begin + num_records
  remaining = BLOCK - 1 - (pos + BLOCK - 1) % BLOCK
  return max(end, pos + max(remaining - (USABLE - 1), 0))
