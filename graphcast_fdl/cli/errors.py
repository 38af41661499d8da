"""The one error type commands raise for bad user input."""


class UsageError(Exception):
  """Bad user input; `main` prints it as one line and exits with code 2."""
