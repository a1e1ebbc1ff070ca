"""What every app shares: one clear line and a non-zero exit on bad input, never a traceback."""

import os
import sys

from absl import app


def _quiet_tensorflow_start():
  """Imports TensorFlow and initialises its devices with stderr closed at the fd level.

  TF's native start-up lines (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL and would bury
  the one line an app prints on bad input. A failed import still raises, after stderr is back.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    import tensorflow as tf
    tf.config.list_logical_devices()
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


_quiet_tensorflow_start()


class UsageError(Exception):
  """Bad input from the user: reported as one line, exit code 2."""


def run(main):
  """`absl.app.run(main)`, with our known failures turned into `error: ...` and exit 2."""
  def guarded(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines through absl bury the results
    from nk_keras.export import ModelError
    from nk_keras.training import DivergenceError
    try:
      return main(argv)
    except (UsageError, ModelError, DivergenceError, ValueError, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      sys.exit(130)

  app.run(guarded)


def writable_dir(path):
  """Creates `path` if needed; a UsageError if it cannot be written."""
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, ".write_test")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise UsageError(f"cannot write to {path!r}: {e.strerror}")
  return path


def parse_assignments(flag, text):
  """`name=value,...` -> dict name -> finite float; errors name `flag`. Names are checked
  against the economy by the caller."""
  import math
  values = {}
  for item in filter(None, (s.strip() for s in text.split(","))):
    name, sep, value = (s.strip() for s in item.partition("="))
    if not sep or not name:
      raise UsageError(f"{flag}: expected name=value, got {item!r}")
    if name in values:
      raise UsageError(f"{flag}: {name} given twice")
    try:
      values[name] = float(value)
    except ValueError:
      raise UsageError(f"{flag}: {name}={value!r} is not a number") from None
    if not math.isfinite(values[name]):
      raise UsageError(f"{flag}: {name}={value} is not a finite number")
  return values

