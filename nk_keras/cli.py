"""What every app shares: one clear line and a non-zero exit on bad input, never a traceback."""

import os
import sys

# TensorFlow's C++ start-up chatter hides the one line a user needs to read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402


class UsageError(Exception):
  """Bad input from the user: reported as one line, exit code 2."""


def run(main):
  """`absl.app.run(main)`, with our known failures turned into `error: ...` and exit 2."""
  def guarded(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines through absl bury the results
    from nk_keras.export import ModelError
    try:
      return main(argv)
    except (UsageError, ModelError, ValueError, FileNotFoundError, PermissionError,
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
