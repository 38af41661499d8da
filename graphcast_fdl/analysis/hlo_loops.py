"""Matmul FLOPs of a compiled HLO module with loop bodies times their trips.

XLA's `cost_analysis` counts the body of a while loop once. Our train step
has loops inside loops (the rollout scan, processor groups, edge and grid
blocks), so its figures undercount by the trips of each. This reads the
optimised HLO text (`compiled.as_text()`), sums the FLOPs of every dot and
convolution per computation, and totals them through the call graph twice:
with each while body weighted by its trip count (XLA's `known_trip_count`,
or its condition's `counter < N`), and with every body counted
once as XLA does. Their ratio rescales XLA's own figures (`xla_cost`).
"""

from __future__ import annotations

import functools
import math
import re

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$")
_DIMS = re.compile(r"^[a-z0-9]+\[([\d,]*)\]")
_NAME = re.compile(r"%([\w.\-]+)")
_CONST = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = s32\[\]\S* constant\((\d+)\)")


def _dims(shape: str) -> list[int]:
  m = _DIMS.match(shape)
  return [int(d) for d in m.group(1).split(",") if d] if m else []


def _computations(text: str) -> tuple[dict, str | None]:
  comps, entry, current = {}, None, None
  for line in text.splitlines():
    if current is None:
      m = _HEADER.match(line)
      if m:
        current = m.group(1)
        comps[current] = []
        entry = current if line.startswith("ENTRY") else entry
    elif line.startswith("}"):
      current = None
    else:
      comps[current].append(line)
  return comps, entry


def _trips(rest: str, condition: list[str]) -> float:
  """A while loop's trip count: XLA's `known_trip_count` where it states it,
  else N of a condition `counter < N` (XLA:TPU), else the condition's one
  integer constant; 1 when none of these."""
  known = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', rest)
  if known:
    return float(known.group(1))
  consts = {m.group(1): int(m.group(2)) for m in map(_CONST.match, condition) if m}
  for line in condition:
    if " compare(" in line and "direction=LT" in line:
      args = line.split("compare(", 1)[1].split(")", 1)[0]
      for name in _NAME.findall(args):
        if name in consts:
          return float(consts[name])
  values = set(consts.values()) - {0}
  return float(values.pop()) if len(values) == 1 else 1.0


def _matmul_flops(op: str, out: str, rest: str, shapes: dict) -> float:
  operands = _NAME.findall(rest.split(")", 1)[0])
  if op == "dot":
    lhs = _dims(shapes.get(operands[0], ""))
    m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
    k = math.prod(lhs[int(i)] for i in m.group(1).split(",") if i) if m and lhs else 1
  else:  # convolution: the kernel's input-feature and window sizes
    rhs = _dims(shapes.get(operands[1], "")) if len(operands) > 1 else []
    m = re.search(r"dim_labels=\w+_(\w+)->", rest)
    k = 1
    if m and len(m.group(1)) == len(rhs):
      k = math.prod(d for c, d in zip(m.group(1), rhs) if c == "i" or c.isdigit())
  return 2.0 * math.prod(_dims(out)) * k


def matmul_flops(text: str) -> tuple[float, float]:
  """(loop-weighted, counted-once) dot/convolution FLOPs of an HLO module."""
  comps, entry = _computations(text)
  shapes = {}
  for lines in comps.values():
    for m in map(_INSTR.match, lines):
      if m:
        shapes[m.group(1)] = m.group(2)
  own, calls = {}, {}
  for name, lines in comps.items():
    flops, callees = 0.0, []
    for m in map(_INSTR.match, lines):
      if not m:
        continue
      out, op, rest = m.group(2), m.group(3), m.group(4)
      if op in ("dot", "convolution"):
        flops += _matmul_flops(op, out, rest, shapes)
      callees += [(c, 1.0) for c in re.findall(r"calls=%([\w.\-]+)", rest)]
      if op == "call":
        callees += [(c, 1.0) for c in re.findall(r"to_apply=%([\w.\-]+)", rest)]
      body = re.search(r"body=%([\w.\-]+)", rest)
      if body:
        condition = re.search(r"condition=%([\w.\-]+)", rest)
        trips = _trips(rest, comps.get(condition.group(1), []) if condition else [])
        callees.append((body.group(1), trips))
      branches = re.search(r"branch_computations=\{([^}]*)\}", rest)
      if branches:
        callees += [(c, 1.0) for c in _NAME.findall(branches.group(1))]
    own[name], calls[name] = flops, callees

  @functools.cache
  def total(name: str, weighted: bool) -> float:
    return own.get(name, 0.0) + sum(
        (trips if weighted else 1.0) * total(c, weighted) for c, trips in calls.get(name, [])
    )

  if entry is None:
    return 0.0, 0.0
  return total(entry, True), total(entry, False)
