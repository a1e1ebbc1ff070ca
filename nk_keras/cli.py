"""What every app shares: one clear line and exit 2 on bad input, never a traceback; a bug says
it is one (exit 70) and leaves its traceback in a log file."""

import contextlib
import dataclasses
import math
import os
import subprocess
import sys

from absl import app

from nk_keras.errors import UserError


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


def _start_devices(configure_devices):
  """Imports TF and initialises its devices, once the flags are known: some (the logical CPU
  split of --cpu_devices) must be configured before that. Run by `_quietly`: TF's start-up
  lines (oneDNN; `failed call to cuInit` where the CUDA driver finds no GPU, which listing the
  physical devices triggers here rather than later, unquieted) would bury an app's one line."""
  import tensorflow as tf
  tf.config.list_physical_devices()   # leaves the logical devices unconfigured
  if configure_devices is not None:
    configure_devices()
  tf.config.list_logical_devices()


class UsageError(UserError):
  """Bad input from the user, found by an app: reported as one line, exit code 2."""


USER_ERROR = 2   # bad input: one `error: ...` line
BUG = 70         # anything else (EX_SOFTWARE of sysexits.h): a bug, its traceback in a log file
INTERRUPTED = 130

# Failures that are the user's input or environment rather than our code; `WorkerFailure` (a
# peer of a multi-worker run died) is added in `run` by `_worker_failure`.
_REPORTED = (UserError, FileNotFoundError, PermissionError, IsADirectoryError,
             NotADirectoryError)

_output_dir = None   # the app's output directory once `writable_dir` has accepted it


def _parse_flags(argv):
  """absl's flag parsing, with its errors reported like every other user error: one line, exit
  2 (absl's own parser prints two lines and exits 1); and help asked for (--help, --helpshort,
  --helpfull, --helpxml) exits 0 once printed, as argparse's does, where absl exits 1."""
  from absl import flags
  try:
    check_flagfiles(argv[1:])
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USER_ERROR)
  try:
    return flags.FLAGS(argv)
  except UserError as e:   # a check that says what is wrong itself (`options.refused_by`)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USER_ERROR)
  except flags.Error as e:
    print(f"error: {e} (--helpshort lists the flags)", file=sys.stderr)
    sys.exit(USER_ERROR)
  except SystemExit as e:
    # absl's help flags exit 1 from inside the parse: the only exit there but
    # --only_check_flags', which is 0 already.
    sys.exit(0 if e.code == 1 else e.code)


def _flagfiles(args):
  """The files named by the `--flagfile` directives among `args`, in order."""
  names, rest = [], list(args)
  while rest:
    arg = rest.pop(0)
    if arg == "--":
      break
    if arg in ("--flagfile", "-flagfile") and rest:
      names.append(rest.pop(0))
    elif arg.startswith(("--flagfile=", "-flagfile=")):
      names.append(arg.split("=", 1)[1])
  return [os.path.expanduser(n) for n in names if n]


def check_flagfiles(args, _stack=()):
  """A UsageError if the `--flagfile`s of `args` include themselves (a -> b -> a): absl only
  warns, skips the file and runs on without its flags (a default run nobody asked for). Files
  that cannot be read are left to absl's own error."""
  for name in _flagfiles(args):
    real = os.path.realpath(name)
    if real in _stack:
      chain = [os.path.relpath(p) for p in (*_stack[_stack.index(real):], real)]
      raise UsageError(f"--flagfile: circular ({' -> '.join(chain)})")
    try:
      with open(name) as f:
        lines = [line.strip() for line in f]
    except OSError:
      continue
    check_flagfiles([l for l in lines if l and not l.startswith(("#", "//"))], (*_stack, real))


def report_bug(error):
  """Writes the traceback of `error` to a log file (in the app's output directory if one was
  accepted, else a temporary file) and returns the file's path."""
  import tempfile
  import traceback
  text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
  try:
    if _output_dir is None:
      raise OSError
    path = os.path.join(_output_dir, "error.log")
    with open(path, "w") as f:
      f.write(text)
  except OSError:
    fd, path = tempfile.mkstemp(prefix="nk_keras-error-", suffix=".log")
    with os.fdopen(fd, "w") as f:
      f.write(text)
  return path


def _worker_failure():
  """`distribute.WorkerFailure` (a peer of a multi-worker run died): a user's environment, not a
  bug. Imported when needed, as the module imports TF."""
  from nk_keras.distribute import WorkerFailure
  return WorkerFailure


def run(main, configure_devices=None):
  """`absl.app.run(main)`, with user errors turned into `error: ...` and exit 2, and anything
  else reported as a bug (exit 70) with its traceback in a log file.

  `configure_devices()`, if given, runs after the flags are parsed and before TF initialises its
  devices (the only moment logical devices can be set up).
  """
  def guarded(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines through absl bury the results
    try:
      _quietly(lambda: _start_devices(configure_devices))
      return main(argv)
    except _REPORTED + (_worker_failure(),) as e:   # evaluated only once something is raised
      print(f"error: {e}", file=sys.stderr)
      sys.exit(USER_ERROR)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      sys.exit(INTERRUPTED)
    except Exception as e:  # a bug: say so, and keep the traceback for its report
      log = report_bug(e)
      print(f"internal error (a bug in nk-keras, not your input): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}; traceback in {log}", file=sys.stderr)
      sys.exit(BUG)

  if main.__module__ != "__main__":
    _adopt_help(sys.modules[main.__module__])
  app.run(guarded, flags_parser=_parse_flags)


def _adopt_help(module):
  """Makes `--help` describe `module`, the app, when it is not `__main__` (a console script).

  absl's `--help` prints `__main__`'s docstring and the flags defined by the file `sys.argv[0]`
  names; under a console script those are pip's wrapper, with neither.
  """
  from absl import flags
  for flag in flags.FLAGS.get_key_flags_for_module(module.__name__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  wrapper = sys.modules["__main__"]
  if not wrapper.__doc__:
    wrapper.__doc__ = module.__doc__


def writable_dir(path, output=True):
  """Creates `path` if needed; a UsageError if it cannot be written. `output`: the app's output
  directory, where a bug's traceback is logged."""
  from nk_keras import files
  try:
    files.writable(path)
  except UserError as e:
    raise UsageError(str(e)) from None
  if output:
    global _output_dir
    _output_dir = path
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


def define_flags(options_class, checks=(), module=None, flag_values=None):
  """One absl flag per field of the dataclass `options_class` that has `help` in its metadata
  (`nk_keras.options.option`): its name, default, help, bounds and choices; the field's type
  picks the flag's. `checks` ((names, test, message), ...) become flag validators. `module`: the app's
  `__name__`, so its `--help` lists the flags (absl lists those defined by the app's own file).
  """
  from absl import flags
  flag_values = flags.FLAGS if flag_values is None else flag_values
  if module == "__main__":
    module = sys.argv[0]   # absl's name for the main module
  common = dict(flag_values=flag_values, module_name=module)
  for field in dataclasses.fields(options_class):
    meta = field.metadata
    if "help" not in meta:
      continue
    name, default, text = field.name, field.default, meta["help"]
    if field.type is bool:
      flags.DEFINE_bool(name, default, text, **common)
    elif meta["choices"]:
      flags.DEFINE_enum(name, default, list(meta["choices"]), text, **common)
    elif field.type in (int, float):
      define = flags.DEFINE_integer if field.type is int else flags.DEFINE_float
      define(name, default, text, lower_bound=meta["lower"], upper_bound=meta["upper"],
             **common)
    else:
      flags.DEFINE_string(name, default, text, **common)
  for names, test, message in checks:
    flags.register_multi_flags_validator(list(names), test, message, flag_values=flag_values)


def options_from_flags(options_class, flag_values=None):
  """An `options_class` from the parsed flags of its fields (the others at their defaults)."""
  from absl import flags
  flag_values = flags.FLAGS if flag_values is None else flag_values
  return options_class(**{f.name: flag_values[f.name].value
                          for f in dataclasses.fields(options_class) if f.name in flag_values})


def flags_given(options_class, flag_values=None):
  """Names of `options_class`'s fields whose flags were set (command line or --flagfile)."""
  from absl import flags
  flag_values = flags.FLAGS if flag_values is None else flag_values
  return {f.name for f in dataclasses.fields(options_class)
          if f.name in flag_values and flag_values[f.name].present}


def options_from_args(options_class, checks, args):
  """An `options_class` from command-line `args` (`--flagfile` included) parsed by a fresh set
  of its flags, with their checks: how a script reads a shipped config (configs/)."""
  from absl import flags
  values = flags.FlagValues()
  define_flags(options_class, checks, module="options", flag_values=values)
  check_flagfiles(args)
  values(["options", *args])
  return options_from_flags(options_class, values)
