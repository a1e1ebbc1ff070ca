"""What every app promises on failure: bad input is one `error:` line and exit 2 (absl's flag
errors included, and nothing of TensorFlow's start-up before it); a bug says it is one, exits 70
and leaves its traceback in a log file."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

import background
from nk_keras import cli, errors, export, training
from nk_keras.estimation import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A tiny app: its main raises a user error or a bug (ZeroDivisionError), after accepting --out if
# given. A file rather than `-c`, so the traceback quotes the line.
TINY_APP = """
import sys
from absl import flags
from nk_keras import cli
flags.DEFINE_string("raise_", "bug", "bug or user")
flags.DEFINE_string("out", None, "output directory")
flags.DEFINE_integer("n", 5, "a bounded flag", lower_bound=5)

def main(argv):
  if flags.FLAGS.out:
    cli.writable_dir(flags.FLAGS.out)
  if flags.FLAGS.raise_ == "user":
    raise cli.UsageError("--raise_: you asked for a user error")
  return 1 / 0

cli.run(main)
"""


def write_tiny_app(out):
  with open(os.path.join(out, "tiny_app.py"), "w") as f:
    f.write(TINY_APP)


def python(name, *args, fixture, needs=None):
  """The tiny app's run with `args` in a fresh interpreter with the repository on its path, its
  process started in the background lane (tests/background.py); the script is written to the
  job's directory (`{out}`) first."""
  return background.job(name, [sys.executable, "{out}/tiny_app.py", *args], cwd=ROOT,
                        timeout=300, env={**os.environ, "PYTHONPATH": ROOT}, fixture=fixture,
                        needs=needs, prepare=write_tiny_app)


USER_ERROR = python("tiny_app_user_error", "--raise_=user", fixture="user_error_run")
BUGS = {with_out: python(f"tiny_app_bug_{with_out}", *(["--out={out}"] if with_out else []),
                         fixture="bug_run",
                         needs=lambda item, w=with_out: background.param(item, "with_out") == w)
        for with_out in (True, False)}
FLAG_ERRORS = [(["--n=1"], "--n=1: 1 is not integer >= 5"), (["--nosuchflag=3"], "nosuchflag")]
FLAG_ERROR_RUNS = {tuple(args): python(
    f"tiny_app_flags_{i}", *args, fixture="flag_error_run",
    needs=lambda item, a=args: background.param(item, "args") == a)
    for i, (args, _) in enumerate(FLAG_ERRORS)}
# Its process too: evaluate on a model directory that does not exist.
BAD_INPUT = background.job("evaluate_bad_input", [sys.executable, "-m", "apps.evaluate",
                                                  "--model={out}/nope"], cwd=ROOT, timeout=300)


@pytest.fixture()
def user_error_run():
  proc = USER_ERROR.result()
  return proc.returncode, proc.stderr


@pytest.fixture()
def bug_run(with_out):
  proc = BUGS[with_out].result()
  return BUGS[with_out].out, proc.returncode, proc.stderr


@pytest.fixture()
def flag_error_run(args):
  proc = FLAG_ERROR_RUNS[tuple(args)].result()
  return proc.returncode, proc.stderr


@pytest.fixture()
def evaluate_bad_input():
  proc = BAD_INPUT.result()
  return pathlib.Path(BAD_INPUT.out), proc


def test_user_errors_share_one_base_that_is_still_a_value_error():
  for cls in (cli.UsageError, export.ModelError, data.DataError, training.DivergenceError,
              training.OptionsMismatch):
    assert issubclass(cls, errors.UserError) and issubclass(cls, ValueError), cls


def test_a_user_error_is_one_line_and_exit_2(user_error_run):
  rc, err = user_error_run
  assert rc == 2, err
  assert err.splitlines() == ["error: --raise_: you asked for a user error"], err


@pytest.mark.parametrize("with_out", [True, False])
def test_a_bug_says_so_exits_70_and_logs_its_traceback(bug_run, with_out):
  out, rc, err = bug_run   # with_out: the app ran with --out=<out>
  assert rc == cli.BUG == 70, err
  lines = err.splitlines()
  assert len(lines) == 1 and "bug" in lines[0] and "ZeroDivisionError" in lines[0], err
  assert "Traceback" not in err
  log = lines[0].rsplit("traceback in ", 1)[1]
  if with_out:   # the app's output directory, when it had accepted one
    assert log == os.path.join(str(out), "error.log")
  try:
    text = open(log).read()
  finally:
    if not with_out:
      os.remove(log)
  assert text.startswith("Traceback") and "1 / 0" in text and "ZeroDivisionError" in text


@pytest.fixture()
def tiny_app(tmp_path):
  write_tiny_app(str(tmp_path))
  return os.path.join(str(tmp_path), "tiny_app.py")


def test_apps_parse_their_flags_before_importing_tensorflow():
  """`--help` and a bad flag answer at once, not after seconds of importing TF: every app
  defines and checks its flags without it (TF comes with the devices, in `cli.run`)."""
  script = ("import sys\n"
            "from absl import flags\n"
            "from nk_keras.apps import {app}\n"
            "try:\n"   # every validator runs; some refuse these placeholder values
            "  flags.FLAGS(['app', '--policy=p', '--model=m', '--out=o'], known_only=True)\n"
            "except (flags.Error, ValueError):\n"   # ValueError: a check's own UserError
            "  pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tensorflow_probability')))\n")
  apps = ("train", "evaluate", "simulate", "estimate", "export", "reference", "existence")
  procs = {app: subprocess.Popen([sys.executable, "-c", script.format(app=app)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for app in apps}
  for app, proc in procs.items():
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (app, err[-2000:])
    assert out.strip() == "[]", (app, out[-2000:])


REFUSED_WITHOUT_TF = {
    "evaluate": (["--model=no/such/dir"], "error: no model directory at 'no/such/dir'"),
    "simulate": (["--model=saved_models/nk_cached/assets", "--theta=beta=0.99"],
                 "is not a SavedModel (no saved_model.pb)"),
    "simulate ": (["--model=saved_models/nk_cached", "--theta=beta=nan"],
                  "error: --theta: beta=nan is not a finite number"),
    "estimate": (["--policy=no/such/dir", "--out=o"], "error: no model directory"),
    "estimate ": (["--policy=saved_models/nk_cached", "--out=o", "--fixed=beta"],
                  "error: --fixed: expected name=value, got 'beta'"),
    "export": (["--run=saved_models"], "holds no trained policy (policy.keras)"),
}


def test_a_bad_model_directory_or_assignment_is_refused_before_importing_tensorflow():
  """What needs no model loaded (the directory, `name=value` syntax) is checked by the flags'
  validators: the user's one line comes at once, not after TF's import."""
  script = ("import sys\n"
            "from absl import flags\n"
            "from nk_keras import cli\n"
            "from nk_keras.apps import {app}\n"
            "try:\n"
            "  cli._parse_flags(['app', *sys.argv[1:]])\n"
            "except SystemExit as e:\n"
            "  print('exit', e.code)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tensorflow_probability')))\n")
  procs = {key: subprocess.Popen([sys.executable, "-c", script.format(app=key.strip()), *args],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
           for key, (args, _) in REFUSED_WITHOUT_TF.items()}
  for key, proc in procs.items():
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.splitlines() == ["exit 2", "[]"], (key, out, err)
    assert err.count("\n") == 1 and REFUSED_WITHOUT_TF[key][1] in err, (key, err)


def test_help_exits_0_with_the_flags_on_stdout(tiny_app):
  # In parallel: each process spends most of its time importing TensorFlow.
  procs = {arg: subprocess.Popen([sys.executable, tiny_app, arg], cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": ROOT})
           for arg in ("--help", "--helpshort", "--helpfull")}
  out = {}
  for arg, proc in procs.items():
    out[arg], err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "--raise_: bug or user" in out[arg], (arg, out[arg], err)
  assert "--log_dir" in out["--helpfull"] and "--log_dir" not in out["--help"]


@pytest.mark.parametrize("args,expected", FLAG_ERRORS)
def test_flag_errors_are_one_line_and_exit_2(flag_error_run, args, expected):
  rc, err = flag_error_run
  assert rc == 2, err
  lines = err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


def test_an_app_on_bad_input_prints_exactly_one_line(evaluate_bad_input):
  """Nothing of TensorFlow's start-up (e.g. `failed call to cuInit` without a GPU) comes first:
  stderr is the one line, unfiltered."""
  out, proc = evaluate_bad_input
  assert proc.returncode == 2
  assert proc.stderr.splitlines() == [f"error: no model directory at '{out / 'nope'}'"], \
      proc.stderr


class _NotAPolicy(tf.Module):
  """A SavedModel with the two signatures of a policy export that is not a policy: `inputs`
  named like the estimation's likelihood surrogate, one output (so only the metadata and the
  signature's names can tell)."""

  def __init__(self, inputs):
    super().__init__()
    spec = [tf.TensorSpec([None], tf.float32, name=n) for n in inputs]
    self.serve = tf.function(lambda *x: {"log_likelihood": tf.add_n(list(x))},
                             input_signature=spec)
    self.in_box = tf.function(lambda *x: {"in_box": tf.math.is_finite(tf.add_n(list(x)))},
                              input_signature=spec)


def save_not_a_policy(path, inputs, metadata):
  module = _NotAPolicy(inputs)
  tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve,
                                                     "in_box": module.in_box})
  if metadata is not None:
    os.makedirs(path / "assets", exist_ok=True)
    (path / export.METADATA).write_text(json.dumps(metadata))
  return str(path)


@pytest.fixture(scope="module")
def foreign_models(tmp_path_factory):
  """Two SavedModels that are not policies: the surrogate's shape and metadata (its signature
  inputs agree with its metadata, the economy is nk), and a bare one without metadata."""
  root = tmp_path_factory.mktemp("foreign")
  names = ["rho_a", "sigma_a"]
  return {"surrogate": save_not_a_policy(root / "surrogate", names, {
              "economy": "nk", "names": names,
              "signature": {"inputs": names, "outputs": ["log_likelihood"]}}),
          "bare": save_not_a_policy(root / "bare", ["x"], None)}


@pytest.mark.parametrize("kind", ["surrogate", "bare"])
def test_loading_a_saved_model_that_is_not_a_policy_is_a_model_error(foreign_models, kind):
  with pytest.raises(export.ModelError, match="not a policy export"):
    export.LoadedPolicy(foreign_models[kind])


def test_a_saved_model_without_in_box_is_not_a_policy(tmp_path):
  module = _NotAPolicy(["x"])
  tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
  with pytest.raises(export.ModelError, match="not a policy export .*no in_box signature"):
    export.LoadedPolicy(str(tmp_path))


def test_apps_refuse_a_saved_model_that_is_not_a_policy(foreign_models, tmp_path):
  model = foreign_models["surrogate"]
  commands = {"evaluate": ["-m", "apps.evaluate", f"--model={model}", f"--out={tmp_path / 'e'}"],
              "simulate": ["-m", "apps.simulate", f"--model={model}", f"--out={tmp_path / 's'}"],
              "estimate": ["-m", "apps.estimate", f"--policy={model}", f"--out={tmp_path / 'm'}"]}
  # In parallel: each process spends most of its time importing TensorFlow.
  procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
           for name, args in commands.items()}
  for name, proc in procs.items():
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, (name, err[-2000:])
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and \
        "not a policy export" in lines[0], (name, err[-2000:])


@pytest.mark.parametrize("text,expected", [
    ("beta=nan", "not a finite number"), ("beta=inf", "not a finite number"),
    ("beta", "expected name=value"), ("beta=1,beta=2", "given twice"),
    ("beta=x", "is not a number")])
def test_assignments_are_checked_before_any_use(text, expected):
  with pytest.raises(cli.UsageError, match=expected):
    cli.parse_assignments("--theta", text)


def test_theta_outside_the_box_is_refused_by_name():
  from nk_keras import economies
  with pytest.raises(cli.UsageError, match=r"beta=2 not in \[0.95, 0.99\]"):
    cli.theta_with(economies.get("nk"), "--theta", {"beta": 2.0, "rho_a": 0.9})
