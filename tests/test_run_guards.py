"""Issue 28: runs that lose work, lie in their records, or eat the machine. Each test here was
seen to fail with its guard removed (BUILD_NOTES.md, "Injected bugs")."""

import csv
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from nk_keras import files, sizes, training
from nk_keras.errors import UserError
from nk_keras.estimation import pipeline
from nk_keras.network import ExtendedPolicy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = os.path.join(ROOT, "saved_models", "nk_cached")


def short(**given):
  """The session's `fresh_run` options (tests/conftest.py), changed by `given`."""
  base = dict(regime="fresh", iterations=200, batch=200, seed=5, steps_per_execution=50)
  return training.TrainOptions(**{**base, **given})


class Interrupt(Exception):
  pass


class InterruptAfterEpoch(keras.callbacks.Callback):
  """Stops a run like a kill after epoch `n`'s checkpoint is written (it runs after it)."""

  def __init__(self, n):
    super().__init__()
    self.n = n

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.n:
      raise Interrupt


def history_steps(out):
  with open(os.path.join(out, "history.csv"), newline="") as f:
    return [int(float(row["step"])) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
  """`short()` stopped after its first epoch (of 100 steps): what a kill leaves."""
  out = str(tmp_path_factory.mktemp("interrupted") / "run")
  with pytest.raises(Interrupt):
    training.run(short(), out, log_every=100, verbose=False, callbacks=[InterruptAfterEpoch(0)])
  return out


def test_resume_restores_the_divergence_guard_and_reaches_the_same_end(fresh_run, interrupted,
                                                                        tmp_path):
  _, whole, whole_dir = fresh_run
  out = str(tmp_path / "run")
  shutil.copytree(interrupted, out)
  model, _ = training.run(short(), out, log_every=100, verbose=False)
  # The guard's start and best are those of the whole run, not re-measured at the resume point.
  np.testing.assert_array_equal(model.guard_state.numpy(), whole.guard_state.numpy())
  for a, b in zip(ExtendedPolicy.load(out).net.get_weights(),
                  ExtendedPolicy.load(str(whole_dir)).net.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert history_steps(out) == [100, 200]


def test_resume_under_another_log_every_is_refused(interrupted, tmp_path):
  out = str(tmp_path / "run")
  shutil.copytree(interrupted, out)
  for log_every in (50, 1000):
    with pytest.raises(training.OptionsMismatch, match="--log_every"):
      training.run(short(), out, log_every=log_every, verbose=False)
  assert os.path.exists(os.path.join(out, "backup", "training_metadata.json"))
  assert not os.path.exists(os.path.join(out, "policy.keras"))


# --- a finished --out, and one killed in its export -----------------------------------------------

TINY = dict(regime="fresh", iterations=125, batch=64, seed=3, steps_per_execution=50, width=16,
            depth=2)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A whole train-app run, tiny: `(options, out)`."""
  options = training.TrainOptions(**TINY)
  out = str(tmp_path_factory.mktemp("finished") / "run")
  assert training.train_and_export(options, out, log_every=50, eval_theta=20) is not None
  return options, out


def test_a_run_takes_exactly_its_gradient_steps(finished):
  # `finished`: 125 steps with rows every 50; the last row is a shorter epoch, not 25 steps more.
  options, out = finished
  assert options.gradient_steps == 125
  assert history_steps(out) == [50, 100, 125]
  assert training.epochs_of(150, 1000, 100) == (150, 50, 1, 0)
  assert training.epochs_of(2501, 1000, 100) == (1000, 100, 2, 501)


def test_rerun_on_a_finished_out_does_nothing_and_other_options_are_refused(finished, capsys):
  options, out = finished
  stamp = os.stat(os.path.join(out, "policy.keras")).st_mtime_ns
  capsys.readouterr()
  assert training.train_and_export(options, out, log_every=50, eval_theta=20) is None
  assert "nothing to do" in capsys.readouterr().out
  with pytest.raises(training.OptionsMismatch, match="--seed"):
    training.train_and_export(training.TrainOptions(**{**TINY, "seed": 4}), out, log_every=50)
  assert os.stat(os.path.join(out, "policy.keras")).st_mtime_ns == stamp


def test_a_run_killed_in_its_export_finishes_the_export(finished, tmp_path, capsys):
  options, done = finished
  out = str(tmp_path / "run")
  shutil.copytree(done, out)
  # A kill mid-export: trained, recorded, no evaluation, a half-written SavedModel.
  for name in ("evaluation.json", "evaluation.md"):
    os.remove(os.path.join(out, name))
  os.remove(os.path.join(out, "saved_model", "saved_model.pb"))
  stamp = os.stat(os.path.join(out, "policy.keras")).st_mtime_ns
  capsys.readouterr()
  assert training.train_and_export(options, out, log_every=50, eval_theta=20) is not None
  assert "not exported" in capsys.readouterr().out
  assert os.path.exists(os.path.join(out, "saved_model", "saved_model.pb"))
  assert os.path.exists(os.path.join(out, "evaluation.json"))
  assert os.stat(os.path.join(out, "policy.keras")).st_mtime_ns == stamp   # not retrained


# --- one run per --out; what killed writers leave -------------------------------------------------

def test_a_second_run_into_a_locked_out_is_refused(tmp_path):
  out = str(tmp_path / "run")
  with files.locked(out):
    with pytest.raises(files.InUse, match=str(os.getpid())):
      with files.locked(out):
        pass
    with pytest.raises(files.InUse):
      training.train_and_export(training.TrainOptions(**TINY), out, log_every=50)
    with pytest.raises(files.InUse):
      pipeline.run(pipeline.EstimateOptions(policy=POLICY, estimate="rho_a", theta="rho_a=0.9",
                                            periods=30), out)
  with files.locked(out):   # released when the block ends
    pass


def test_the_train_app_on_a_locked_out_says_so_in_one_line(tmp_path):
  out = str(tmp_path / "run")
  with files.locked(out):
    proc = subprocess.run([sys.executable, "-m", "apps.train", f"--out={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: ") and "in use" in lines[0], lines


def dead_pid():
  proc = subprocess.Popen(["true"])
  proc.wait()
  return proc.pid


def test_what_killed_writers_left_is_removed_and_a_live_ones_kept(tmp_path):
  out = tmp_path / "est"
  dead, live = dead_pid(), os.getpid()
  stale = [out / f".surrogate.partial-{dead}", out / f".surrogate.old-{dead}",
           out / "exact_policy" / f".surrogate.partial-{dead}"]
  for d in stale:
    d.mkdir(parents=True)
  (out / f".dataset.partial-{dead}.npz").write_bytes(b"half")
  stale.append(out / f".dataset.partial-{dead}.npz")
  kept = [out / f".surrogate.partial-{live}", out / "surrogate"]
  for d in kept:
    d.mkdir()
  pipeline.start(pipeline.EstimateOptions(policy=POLICY, estimate="rho_a", theta="rho_a=0.9",
                                          periods=30), str(out))
  assert [p for p in stale if p.exists()] == []
  assert all(p.exists() for p in kept)


def test_estimate_refuses_simulation_flags_with_data(tmp_path):
  data = tmp_path / "data.csv"
  data.write_text("X,Pi\n0.1,0.2\n")
  for given, flag in ((dict(periods=30), "--periods"), (dict(observe_zeta=True), "--observe_zeta"),
                      (dict(data_seed=5), "--data_seed"), (dict(theta="rho_a=0.9"), "--theta")):
    with pytest.raises(UserError, match=flag):
      pipeline.start(pipeline.EstimateOptions(policy=POLICY, data=str(data), **given),
                     str(tmp_path / "out"))


# --- exports: what --out may be, checked before any work ------------------------------------------

def test_onnx_out_is_checked_before_converting(finished, tmp_path):
  from nk_keras import onnx_export
  _, run = finished
  keras_file = os.path.join(run, "policy.keras")
  before = open(keras_file, "rb").read()
  fake = tmp_path / "fake.onnx"
  fake.write_bytes(before)
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  for out, overwrite, message in ((keras_file, True, r"\.onnx"),
                                  (str(tmp_path / "x.json"), False, r"\.onnx"),
                                  (str(fake), True, "not an ONNX model"),
                                  (str(blocker / "x.onnx"), False, "cannot write")):
    with pytest.raises(UserError, match=message):
      onnx_export.convert(os.path.join(run, "saved_model"), out, overwrite=overwrite)
  assert open(keras_file, "rb").read() == before
  onnx_export.check_target(str(tmp_path / "new" / "folder" / "x.onnx"), False)   # made


def test_savedmodel_export_to_an_unwritable_out_is_a_user_error(finished, tmp_path):
  from nk_keras import export
  _, run = finished
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(UserError, match="cannot write"):
    export.export_run_again(run, str(blocker / "sub" / "saved_model"), n_theta=5)


# --- errors of the right kind, saying what is wrong -----------------------------------------------

def test_a_circular_flagfile_is_refused(tmp_path):
  from nk_keras import cli
  a, b, c = tmp_path / "a.flags", tmp_path / "b.flags", tmp_path / "c.flags"
  a.write_text(f"--iterations=10\n--flagfile={b}\n")
  b.write_text(f"# b\n--flagfile={a}\n")
  c.write_text(f"--flagfile={c}\n")
  for start in (a, c):
    with pytest.raises(cli.UsageError, match="circular"):
      cli.options_from_args(training.TrainOptions, training.CHECKS, [f"--flagfile={start}"])
  b.write_text("--batch=100\n")   # a -> b only: fine
  options = cli.options_from_args(training.TrainOptions, training.CHECKS, [f"--flagfile={a}"])
  assert (options.iterations, options.batch) == (10, 100)


def test_init_says_what_differs(fresh_run):
  _, _, run = fresh_run
  for given, message in ((dict(economy="rank_zlb"), "another economy: nk there, rank_zlb"),
                         (dict(normalization="kmr"), "another normalization"),
                         (dict(width=32), "another network shape.*64 x 5 there, 32 x 5")):
    with pytest.raises(UserError, match=message):
      training.build_regime(training.TrainOptions(**{"regime": "fresh", **given,
                                                     "init": str(run)}))


def test_the_pool_check_is_for_the_cached_regime_only():
  training.TrainOptions(regime="fresh", batch=300_000).check()
  with pytest.raises(UserError, match="--pool"):
    training.TrainOptions(regime="cached", batch=300_000).check()


def test_a_corrupt_metadata_file_is_named(finished, tmp_path):
  from nk_keras import export
  _, run = finished
  model = tmp_path / "saved_model"
  shutil.copytree(os.path.join(run, "saved_model"), model)
  (model / "assets" / "metadata.json").write_text('{"economy": "nk", ')
  with pytest.raises(export.ModelError, match="metadata.json.* corrupt"):
    export.LoadedPolicy(str(model))


# --- sizes the machine cannot hold ----------------------------------------------------------------

GIB = 2**30


class NotRefused(Exception):
  pass


@pytest.fixture()
def two_gib_machine(monkeypatch):
  """A 2 GiB machine, where the work after each app's size check fails at once: a size that is
  not refused fails the test instead of running (and eating this machine)."""
  from nk_keras import cli

  def work(*args, **kwargs):
    raise NotRefused
  monkeypatch.setattr(sizes, "available", lambda: 2 * GIB)
  monkeypatch.setattr(cli, "writable_dir", work)
  monkeypatch.setattr(training, "build_regime", work)


def refused(flag, call):
  """`call()` raises TooLarge naming `--flag` and the largest value that fits; returns that."""
  with pytest.raises(sizes.TooLarge, match=f"^--{flag}=[0-9,]+ needs about .* at most "
                                           f"--{flag}=[0-9,]+ fits$") as e:
    call()
  return int(str(e.value).rsplit("=", 1)[1].split()[0].replace(",", ""))


def test_sizes_too_large_for_the_machine_are_refused(two_gib_machine, tmp_path):
  from nk_keras import reports
  from nk_keras.reference import report
  out = str(tmp_path / "out")
  refused("periods", lambda: reports.simulate(reports.SimulateOptions(
      model=POLICY, periods=10**9, out=out)))
  refused("n_theta", lambda: reports.evaluate(reports.EvaluateOptions(
      model=POLICY, n_theta=10**8, out=out)))
  refused("points", lambda: report.solve_and_write("rank_zlb", "", out, points=10**8))
  fits = refused("batch", lambda: training.run(training.TrainOptions(batch=10**8), out))
  sizes.training(training.TrainOptions(batch=fits), training.economies.get("nk"))
  assert 10**4 < fits < 10**8
  refused("particles", lambda: pipeline.start(pipeline.EstimateOptions(
      policy=POLICY, particles=10**9), out))
  refused("draws", lambda: pipeline.start(pipeline.EstimateOptions(
      policy=POLICY, draws=10**9), out))
  assert not os.path.exists(os.path.join(out, "backup"))   # refused before any work
  # The defaults fit in 2 GiB.
  nk = training.economies.get("nk")
  sizes.training(training.TrainOptions(), nk)
  sizes.simulate(reports.SimulateOptions(model=POLICY), nk)
  sizes.evaluate(nk.eval_theta, nk)
  sizes.estimation(pipeline.EstimateOptions(draws=10_000, particles=1000), nk, 8)


def test_the_simulate_app_refuses_a_size_in_one_line():
  proc = subprocess.run([sys.executable, "-m", "apps.simulate", f"--model={POLICY}",
                         "--periods=1000000000000"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: --periods="), lines


# --- data in the wrong units ----------------------------------------------------------------------

def test_data_in_the_wrong_units_give_a_loud_flat_likelihood_warning(tmp_path, capsys):
  given = dict(policy=POLICY, estimate="rho_a,sigma_a", draws=64, particles=50, pf_table=0)

  def first_stages(out, **more):
    est = pipeline.start(pipeline.EstimateOptions(**given, **more), str(out))
    pipeline.data(est)
    return pipeline.likelihood_dataset(est)

  right = first_stages(tmp_path / "right", theta="rho_a=0.9,sigma_a=0.05", periods=50)
  assert right.warnings == []
  lines = (tmp_path / "right" / "data.csv").read_text().splitlines()
  scaled = [lines[0]] + [",".join([row.split(",")[0]] + [repr(float(v) * 1e6) for v in
                                                         row.split(",")[1:]])
                         for row in lines[1:]]
  (tmp_path / "scaled.csv").write_text("\n".join(scaled) + "\n")
  capsys.readouterr()
  wrong = first_stages(tmp_path / "wrong", data=str(tmp_path / "scaled.csv"))
  assert len(wrong.warnings) == 1 and "flat" in wrong.warnings[0]
  assert "WARNING: the log-likelihood is flat" in capsys.readouterr().err
