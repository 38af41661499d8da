"""A key for what a store holds, so cached statistics follow its content.

Statistics of a `source="zarr"` store are cached on disk; keyed by the path
alone, a store replaced at the same path would be trained with the old
store's statistics. The fingerprint hashes the store's metadata documents
(shapes, chunking, attributes, coordinates' encoding) by content, and every
file's size and modification time: rewriting any chunk, or the whole store,
changes it. Locally that is one `os.walk` (about a second per 10^5 chunk
files). For a remote store (gs://..., through fsspec) only the metadata
documents are read, with their version fields (generation, ETag, mtime): a
store rewritten in place rewrites them, while listing every chunk of a WB2
store would take thousands of requests.
"""

from __future__ import annotations

import hashlib
import os

import fsspec

# Zarr v2/v3 metadata documents; hashed by content.
_METADATA = (".zmetadata", ".zarray", ".zattrs", ".zgroup", "zarr.json")
# Fields of an fsspec listing entry that change when an object is rewritten.
_VERSION_FIELDS = (
    "generation",
    "ETag",
    "etag",
    "md5Hash",
    "crc32c",
    "mtime",
    "LastModified",
    "updated",
    "created",
)


def _local_entries(path: str):
  if os.path.isfile(path):
    st = os.stat(path)
    yield "", st.st_size, st.st_mtime_ns, None
    return
  for root, dirs, files in os.walk(path):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      st = os.stat(full)
      content = None
      if name in _METADATA:
        with open(full, "rb") as f:
          content = f.read()
      yield os.path.relpath(full, path), st.st_size, st.st_mtime_ns, content


def _remote_entries(path: str):
  """Metadata documents of the store and of each array, with their versions.

  Listing every chunk of a WB2 store would take thousands of requests; a
  store rewritten in place rewrites its metadata documents, whose
  generation / modification time changes.
  """
  fs, root = fsspec.core.url_to_fs(path)
  root = root.rstrip("/")
  if not fs.isdir(root):
    info = fs.info(root)
    yield "", info.get("size"), _version(info), None
    return
  candidates = []
  for entry in sorted(fs.ls(root, detail=True), key=lambda e: e["name"]):
    name = entry["name"].rstrip("/")
    if entry["type"] == "directory":
      candidates += [f"{name}/{m}" for m in _METADATA]
    elif name.rsplit("/", 1)[-1] in _METADATA:
      candidates.append(name)
  for name in candidates:
    try:
      info = fs.info(name)
    except FileNotFoundError:
      continue
    yield name[len(root) :], info.get("size"), _version(info), fs.cat_file(name)


def _version(info) -> tuple:
  return tuple(str(info[k]) for k in _VERSION_FIELDS if info.get(k) is not None)


def store_fingerprint(path: str) -> str:
  """Hex digest of a zarr store's (or netCDF file's) metadata and listing."""
  digest = hashlib.sha1()
  entries = _remote_entries(path) if "://" in path else _local_entries(path)
  for name, size, version, content in entries:
    digest.update(repr((name, size, version)).encode())
    if content is not None:
      digest.update(hashlib.sha1(content).digest())
  return digest.hexdigest()
