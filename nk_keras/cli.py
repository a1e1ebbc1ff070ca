"""What every app shares: one clear line and a non-zero exit on bad input, never a traceback."""

import contextlib
import math
import os
import subprocess
import sys

from absl import app


def _quietly(fn):
  """Calls `fn()` with stderr closed at the fd level.

  TF's native start-up lines (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL and would bury
  the one line an app prints on bad input. An exception still propagates, after stderr is back.
  """
  global _stderr
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  _stderr = saved
  try:
    return fn()
  finally:
    _stderr = 2
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


_stderr = 2  # the file descriptor of the real stderr, also while `_quietly` has closed fd 2


# Run by `deadline` in a separate process: waits for its stdin to close (the block finished, or
# the app died) and otherwise reports the message and kills the app.
_WATCHER = """
import os, select, signal, sys
pid, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], seconds)[0]:
    sys.stderr.write("error: " + message + "\\n")
    sys.stderr.flush()
    os.kill(pid, signal.SIGKILL)
"""


@contextlib.contextmanager
def deadline(seconds, message):
  """Ends the process with `error: <message>` (killed, non-zero exit) if the block takes over
  `seconds`.

  For waits inside TF's C++ runtime (a multi-worker strategy waiting for its peers), which hold
  the GIL: neither a Python thread, an exception nor SIGTERM gets through, so the watch is kept
  by another process.
  """
  watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), str(seconds),
                              message], stdin=subprocess.PIPE, stderr=_stderr)
  try:
    yield
  finally:
    watcher.stdin.close()
    watcher.wait()


def _import_tensorflow():
  import tensorflow  # noqa: F401


# Importing TF prints the most; devices are initialised in `run`, once the flags are known,
# because some (the logical CPU split of --cpu_devices) must be configured before that.
_quietly(_import_tensorflow)


def _start_devices(configure_devices):
  import tensorflow as tf
  if configure_devices is not None:
    configure_devices()
  tf.config.list_logical_devices()


class UsageError(Exception):
  """Bad input from the user: reported as one line, exit code 2."""


def run(main, configure_devices=None):
  """`absl.app.run(main)`, with our known failures turned into `error: ...` and exit 2.

  `configure_devices()`, if given, runs after the flags are parsed and before TF initialises its
  devices (the only moment logical devices can be set up).
  """
  def guarded(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines through absl bury the results
    from nk_keras.distribute import WorkerFailure
    from nk_keras.export import ModelError
    from nk_keras.training import DivergenceError
    try:
      _quietly(lambda: _start_devices(configure_devices))
      return main(argv)
    except (UsageError, ModelError, DivergenceError, ValueError, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError, WorkerFailure) as e:
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
    # One probe per process: the workers of a multi-worker run on one machine share `path`.
    probe = os.path.join(path, f".write_test-{os.getpid()}")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise UsageError(f"cannot write to {path!r}: {e.strerror}")
  return path


def parse_assignments(flag, text):
  """`name=value,...` -> dict name -> finite float; errors name `flag`. Names are checked
  against the economy by `theta_with`."""
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


def check_names(economy, flag, names):
  """A UsageError naming `flag` if any of `names` is not a parameter of `economy`."""
  unknown = [n for n in names if n not in economy.param_names]
  if unknown:
    raise UsageError(f"{flag}: unknown parameter(s) {', '.join(unknown)}; known: "
                     f"{', '.join(economy.param_names)}")


def theta_with(economy, flag, values, domain=True):
  """The calibration with `values` (name -> float) in place, `[n_params]`; a UsageError naming
  `flag` for unknown names, values outside the box or (`domain`) a theta outside the region
  where the economy knows an equilibrium exists."""
  check_names(economy, flag, values)
  theta = economy.theta_from(values)
  bad = economy.outside_box(theta)
  if bad:
    ranges = "; ".join(f"{n}={values[n]:g} not in [{economy.box_low[i]:g}, {economy.box_high[i]:g}]"
                       for i, n in enumerate(economy.param_names) if n in bad)
    raise UsageError(f"{flag}: outside the box: {ranges} (outside the training box the policy "
                     f"extrapolates, with no accuracy guarantee)")
  if domain and economy.domain_reason() and not bool(economy.in_domain(theta[None])[0]):
    where = ", ".join(f"{n}={v:g}" for n, v in zip(economy.param_names, theta))
    raise UsageError(f"{flag}: {where} is outside the domain of {economy.name}: "
                     f"{economy.domain_reason()}")
  return theta
