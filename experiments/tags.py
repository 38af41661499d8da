"""Fiddle tags that tie together fields which must change as one."""

import fiddle as fdl


class Resolution(fdl.Tag):
  """Grid spacing in degrees: on the model and on every data source."""


class DeviceCount(fdl.Tag):
  """Number of devices in the training mesh."""


class GlobalBatchSize(fdl.Tag):
  """Examples per optimiser step, on every data source."""
