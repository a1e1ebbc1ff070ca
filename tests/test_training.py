"""Every regime learns, the train app works end to end and rejects bad flags."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import background
from nk_keras import accuracy, economies, training
from nk_keras.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A regime that does not learn (the seed's `train!`: ~100 % error) or learns the wrong economy
# (a state/theta mismatch) stays far above this; a working one reaches ~1 % in these 1,000
# gradient steps with the default optimiser, SOAP (measured: 1.05-1.28 % mean error in every
# regime; AdamW reaches 3.5-4.1 % in as many steps, ~1-3 % in 3,000: BUILD_NOTES.md, "Short runs").
LEARNS_BELOW_PCT = 10.0
# The four short runs are one process (tests/learning_check.py) in the background lane
# (tests/background.py): the core the tests leave idle trains them while earlier tests run.
LEARNING = background.job("learning_check", [sys.executable,
                                             os.path.join(ROOT, "tests", "learning_check.py")],
                          cwd=ROOT, timeout=900, fixture="learning_runs")


@pytest.fixture()
def learning_runs():
  proc = LEARNING.result()
  assert proc.returncode == 0, proc.stderr[-3000:]
  runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  return {run["regime"]: run for run in runs}


@pytest.mark.parametrize("regime", ["fresh", "cached", "internal", "stepping"])
def test_every_regime_learns(learning_runs, regime):
  run = learning_runs[regime]
  assert run["loss"][1] < run["loss"][0]
  for name, stats in run["errors_pct"].items():
    assert stats["mean"] < LEARNS_BELOW_PCT, (regime, name, stats)


def run_app(*args, timeout=300, app="apps.train"):
  return subprocess.run([sys.executable, "-m", app, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout)


# The app's run starts in the background lane (tests/background.py) while earlier tests run.
TRAIN_RUN = background.job(
    "train_run", [sys.executable, "-m", "apps.train", "--regime=stepping", "--iterations=40",
                  "--internal=2", "--mc=2", "--eval_theta=500", "--log_every=20",
                  "--out={out}/run"], cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def train_run():
  proc = TRAIN_RUN.result()
  assert proc.returncode == 0, proc.stderr[-2000:]
  return pathlib.Path(TRAIN_RUN.out) / "run", proc


def test_train_app_end_to_end(train_run):
  out, proc = train_run
  for name in ("policy.keras", "policy.json", "run.json", "history.csv", "evaluation.json",
               "evaluation.md", "saved_model/saved_model.pb",
               "saved_model/assets/metadata.json", "saved_model/assets/history.csv"):
    assert (out / name).exists(), name
  meta = json.loads((out / "saved_model/assets/metadata.json").read_text())
  assert meta["regime"] == "stepping" and meta["options"]["internal"] == 2
  assert "--iterations=40" in meta["command"]
  assert meta["evaluation"]["n_theta"] == 500
  assert "X" in proc.stdout and "Pi" in proc.stdout


def test_export_app_rewrites_the_export_of_a_run(train_run, tmp_path):
  run, _ = train_run
  out = tmp_path / "exported"
  proc = run_app(f"--run={run}", f"--out={out}", "--n_theta=500", app="apps.export")
  assert proc.returncode == 0, proc.stderr[-2000:]
  first = json.loads((run / "saved_model/assets/metadata.json").read_text())
  again = json.loads((out / "assets/metadata.json").read_text())
  # Same run record, same policy: the same accuracy on the same draws of the box.
  for key in ("command", "options", "git_commit", "wall_time_s", "versions"):
    assert again[key] == first[key], key
  for name in ("X", "Pi"):
    assert again["evaluation"]["errors_pct"][name] == pytest.approx(
        first["evaluation"]["errors_pct"][name])
  assert (out / "assets/history.csv").read_text() == (run / "history.csv").read_text()
  theta = accuracy.draw_box(economies.get("nk"), 200, seed=5)
  feeds = {n: theta[:, i] for i, n in enumerate(first["signature"]["inputs"][1:])}
  feeds["zeta"] = tf.fill([200], 0.01)
  a = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"](**feeds)
  b = tf.saved_model.load(str(out)).signatures["serving_default"](**feeds)
  for name in ("X", "Pi"):
    np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
  proc = run_app(f"--run={run}", f"--out={out}", app="apps.export")
  assert proc.returncode == 2 and "--overwrite" in proc.stderr


NOT_FINISHED = [
    (lambda d: None, "no run directory"),
    (lambda d: (d / "backup").mkdir(parents=True), "unfinished"),
    (lambda d: d.mkdir(), "no trained policy"),
]
BAD_FLAGS = [
    (["--regime=magic"], "regime"),
    (["--iterations=abc"], "iterations"),
    (["--mc=3"], "mc"),
    (["--batch=0"], "batch"),
    (["--lr=0.001", "--eta_min=0.01"], "eta_min"),
    (["--regime=cached", "--pool=10", "--batch=100"], "pool"),
    (["--out=/proc/forbidden"], "cannot write"),
    (["--clipnorm=0"], "--clipnorm must be positive"),
]
# Each case's app process (most of it TensorFlow's import) runs in the background lane
# (tests/background.py), the same command as `run_app` runs; the test asserts on its result.
EXPORT_REFUSALS = {needle: background.job(
    f"export_refuses_{i}", [sys.executable, "-m", "apps.export", "--run={out}/run"], cwd=ROOT,
    timeout=120, fixture="export_refusal",
    needs=lambda item, needle=needle: background.param(item, "needle") == needle,
    prepare=lambda out, make=make: make(pathlib.Path(out) / "run"))
    for i, (make, needle) in enumerate(NOT_FINISHED)}
BAD_FLAG_RUNS = {tuple(args): background.job(
    f"train_bad_flags_{i}", [sys.executable, "-m", "apps.train", *args], cwd=ROOT, timeout=120,
    fixture="bad_flag_run", needs=lambda item, args=args: background.param(item, "args") == args)
    for i, (args, _) in enumerate(BAD_FLAGS)}


@pytest.fixture()
def export_refusal(needle):
  return EXPORT_REFUSALS[needle].result()


@pytest.fixture()
def bad_flag_run(args):
  return BAD_FLAG_RUNS[tuple(args)].result()


@pytest.mark.parametrize("make,needle", NOT_FINISHED)
def test_export_app_rejects_what_is_not_a_finished_run(export_refusal, make, needle):
  proc = export_refusal   # `make` made its run directory before the app started
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert needle in proc.stderr


@pytest.mark.parametrize("args,needle", BAD_FLAGS)
def test_train_app_rejects_bad_flags(bad_flag_run, args, needle):
  proc = bad_flag_run
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_a_clip_of_zero_is_refused_not_read_as_no_clip():
  with pytest.raises(UserError, match="clipnorm must be positive"):
    training.build_regime(training.TrainOptions(regime="fresh", clipnorm=0.0))


def nk_closed_form(theta):
  """The NK model's solution, written here from its equations (docs/models.md) rather than taken
  from nk_keras: X = a * zeta, Pi = b * zeta, and the state's ergodic std. `theta` `[n, 8]`
  float64 in the economy's order; returns (a, b, std), each `[n]`."""
  beta, sigma, eta, phi, phi_pi, phi_y, rho, sigma_a = theta.T
  kappa = (1 - phi) * (1 - phi * beta) * (sigma + eta) / phi
  D = (sigma * (1 - rho) + phi_y) * (1 - beta * rho) + kappa * (phi_pi - rho)
  s_eps = sigma_a * sigma * (rho - 1) * (1 + eta) / (sigma + eta)
  return (1 - beta * rho) / D, kappa / D, np.abs(s_eps) / np.sqrt(1 - rho ** 2)


def test_reported_accuracy_equals_an_independent_measurement(train_run):
  """evaluation.json (and the export's metadata) report what the exported SavedModel's errors
  against the closed form really are, measured here without nk_keras' accuracy code."""
  out, _ = train_run
  report = json.loads((out / "evaluation.json").read_text())
  meta = json.loads((out / "saved_model/assets/metadata.json").read_text())
  assert meta["evaluation"]["errors_pct"] == report["errors_pct"]
  # The app's draws (seed 0); which thetas is not what is tested here.
  theta = accuracy.draw_box(economies.get("nk"), report["n_theta"], seed=0).numpy()
  theta = theta.astype(np.float64)
  a, b, std = nk_closed_form(theta)
  levels = np.array(report["levels"])                                 # [L]
  zeta = std[:, None] * levels[None]                                  # [n, L]
  serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
  feeds = {n: tf.constant(np.repeat(theta[:, i], len(levels)), tf.float32)
           for i, n in enumerate(meta["signature"]["inputs"][1:])}
  served = serve(zeta=tf.constant(zeta.reshape(-1), tf.float32), **feeds)
  for name, slope in (("X", a), ("Pi", b)):
    nn = served[name].numpy().astype(np.float64).reshape(zeta.shape)
    errors = 100 * np.abs(nn - slope[:, None] * zeta) / (np.abs(slope) * std)[:, None]
    got = report["errors_pct"][name]
    np.testing.assert_allclose([got["mean"], got["p95"], got["max"]],
                               [errors.mean(), np.percentile(errors, 95), errors.max()],
                               rtol=1e-3, err_msg=name)
    for i, k in enumerate(levels):
      level = report["errors_pct_by_level"][f"{k:+g}"][name]
      np.testing.assert_allclose(level["mean"], errors[:, i].mean(), rtol=1e-3)


def test_phase_in_brings_the_constraint_in_by_step_and_leaves_the_model_whole(tmp_path):
  """--phase_in: the relaxation the compiled steps read falls 1 -> 0 over its share of the
  steps, set from the step at each compiled call; the economy is the model again afterwards
  (the export and evaluation see the whole ZLB); an economy without a constraint refuses it."""
  seen = []

  class Record(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      seen.append(float(self.model.policy.economy.relaxation.numpy()))

  options = training.TrainOptions.for_economy(
      "rank_zlb", regime="fresh", iterations=400, batch=32, mc=2, width=8, depth=1,
      steps_per_execution=100, phase_in=0.5)
  model, _ = training.run(options, str(tmp_path / "run"), verbose=False, callbacks=[Record()])
  np.testing.assert_allclose(seen, [1.0, 0.5, 0.0, 0.0])
  assert model.policy.economy.relaxation == 0.0
  with pytest.raises(UserError, match="no occasionally binding constraint"):
    training.build_regime(dataclasses.replace(options, economy="nk", regime="fresh",
                                              normalization="ergodic", weighting="ergodic"))
