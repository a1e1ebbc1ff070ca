"""Resumable, reproducible, divergence-safe training."""

import dataclasses
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import background
from nk_keras import callbacks, training
from nk_keras.network import ExtendedPolicy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--regime=stepping", "--iterations=400", "--internal=2", "--batch=200",
         "--log_every=100", "--steps_per_execution=50", "--eval_theta=200"]


def train_app(*args, timeout=300):
  return subprocess.Popen([sys.executable, "-m", "apps.train", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def weights(out):
  return ExtendedPolicy.load(str(out)).net.get_weights()


def assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


# Slow (`pytest -m slow`): two training processes, one SIGKILLed (1.5 minutes); the default run
# proves the same resume in-process, bitwise and with the guard's state
# (test_run_guards.py::test_resume_restores_the_divergence_guard_and_reaches_the_same_end).
@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path):
  whole, cut = tmp_path / "whole", tmp_path / "cut"
  proc = train_app(*SMALL, f"--out={whole}")
  assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]

  proc = train_app(*SMALL, f"--out={cut}")
  history = cut / "history.csv"
  deadline = time.time() + 240
  while time.time() < deadline:   # kill once a checkpoint exists, mid-run
    if history.exists() and len(history.read_text().splitlines()) >= 4:
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  rows = len(history.read_text().splitlines()) - 1
  assert 3 <= rows < 8, rows      # it was killed mid-way (8 rows = finished)

  proc = train_app(*SMALL, f"--out={cut}")
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-2000:]
  assert stdout.splitlines()[0].startswith("resuming"), stdout[:500]
  assert len(history.read_text().splitlines()) - 1 == 8
  # Weights, optimiser state, step (which keys every draw) and the persistent batch are all
  # restored, and XLA on CPU is deterministic: the result is bitwise the same.
  assert_same(weights(whole), weights(cut))


def short(seed):
  return training.TrainOptions(regime="fresh", iterations=200, batch=200, seed=seed,
                               steps_per_execution=50)


def test_same_seed_same_policy_other_seed_other_policy(fresh_run, tmp_path):
  options, _, run_a = fresh_run   # the session's run of short(5) (tests/conftest.py)
  assert options == short(5)
  got = {"a": weights(run_a)}
  for name, seed in (("b", 5), ("c", 6)):
    training.run(short(seed), str(tmp_path / name), log_every=100, verbose=False)
    got[name] = weights(tmp_path / name)
  assert_same(got["a"], got["b"])
  assert not all(np.array_equal(x, y) for x, y in zip(got["a"], got["c"]))


def test_changed_options_on_an_interrupted_run_are_refused(tmp_path):
  out = str(tmp_path / "run")
  os.makedirs(os.path.join(out, "backup"))
  # An interrupted run's traces: its options and Keras' checkpoint metadata.
  with open(os.path.join(out, "backup", "options.json"), "w") as f:
    json.dump(dataclasses.asdict(short(1)), f)
  with open(os.path.join(out, "backup", "training_metadata.json"), "w") as f:
    json.dump({"epoch": 0, "batch": -1}, f)
  with pytest.raises(training.OptionsMismatch, match="seed"):
    training.run(short(2), out, log_every=100, verbose=False)


class PoisonAfterEpoch(keras.callbacks.Callback):
  """Makes the network's weights NaN after epoch `n`, once its checkpoint is written."""

  def __init__(self, n):
    super().__init__()
    self.n = n

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.n:
      w = self.model.net.trainable_variables[0]
      w.assign(np.full(w.shape, np.nan, np.float32))


def test_divergence_stops_keeps_a_good_checkpoint_and_exports_nothing(tmp_path):
  out = str(tmp_path / "run")
  with pytest.raises(training.DivergenceError, match="gradient step 150"):
    training.run(short(1), out, log_every=100, verbose=False, callbacks=[PoisonAfterEpoch(0)])
  assert not os.path.exists(os.path.join(out, "policy.keras"))
  model = training.build_regime(short(1))
  model.optimizer.build(model.trainable_variables)
  model.load_weights(os.path.join(out, "backup", "latest.weights.h5"))
  assert all(np.isfinite(w).all() for w in model.net.get_weights())
  assert int(model.optimizer.iterations.numpy()) == 100


# Its process starts in the background lane (tests/background.py) while earlier tests run.
ABSURD_LR = background.job(
    "absurd_lr_run", [sys.executable, "-m", "apps.train", "--regime=fresh", "--iterations=300",
                      "--lr=1e4", "--log_every=100", "--out={out}/run"], cwd=ROOT, timeout=300)


@pytest.fixture()
def absurd_lr_run():
  proc = ABSURD_LR.result()
  return pathlib.Path(ABSURD_LR.out) / "run", proc


def test_absurd_learning_rate_fails_cleanly_from_the_app(absurd_lr_run):
  run, proc = absurd_lr_run
  stderr = proc.stderr
  assert proc.returncode == 2
  assert "Traceback" not in stderr
  assert "diverged" in stderr and "--lr" in stderr
  assert not (run / "saved_model").exists()


class UndoTheFit(keras.callbacks.Callback):
  """Puts the network's initial weights back before the compiled call that starts at gradient
  step `at`: a fit undone without a blow-up. Too high a learning rate does this too (SOAP at 0.1
  keeps the network thrashing at a loss 10-1000x its best), but whether a given seed thrashes,
  blows up or never learns at all depends on the processor's rounding (seed 3 at lr 0.1 learned
  and was stopped on one machine, and never fell below its start on another), so the test undoes
  the fit itself."""

  def __init__(self, at):
    super().__init__()
    self.at = at

  def on_train_begin(self, logs=None):
    self.initial = self.model.get_weights()

  def on_train_batch_begin(self, batch, logs=None):
    if int(self.model.optimizer.iterations.numpy()) == self.at:
      self.model.set_weights(self.initial)


@pytest.mark.lane
def test_a_fit_undone_without_a_blow_up_is_stopped_by_the_probe(tmp_path):
  """290 healthy steps, then the initial weights back 10 steps before the third epoch's probe
  (given 50, SOAP relearns enough to pass the guard): the probe reads about 0.8, 130x its best
  of 0.006 and near its start of 8.5, while the training loss never reaches 1000x the start, so
  the probe condition, not the blow-up one, must stop the run before anything is written."""
  options = training.TrainOptions(regime="fresh", iterations=400, batch=200, seed=1,
                                  steps_per_execution=10)
  with pytest.raises(training.DivergenceError, match="probe batch") as e:
    training.run(options, str(tmp_path / "run"), log_every=100, verbose=False,
                 callbacks=[UndoTheFit(at=290)])
  assert "gradient step 300" in str(e.value) and "--lr" in str(e.value)
  assert not (tmp_path / "run" / "policy.keras").exists()


class ScriptedProbe:
  """Stands in for a regime: `probe_loss` returns the scripted values in turn."""

  def __init__(self, values):
    self.values = iter(values)
    self.optimizer = types.SimpleNamespace(iterations=tf.Variable(0), learning_rate=1e-3)

  def probe_loss(self):
    return next(self.values)


@pytest.mark.parametrize("values, stops_at", [
    # start 1, best 1e-4: a 20x spike (2e-3) keeps most of the fall and passes; 0.05 does not.
    ([1.0, 1e-3, 1e-4, 2e-3, 3e-4, 0.05], 5),
    # 15x its best but below the geometric mean of best and start (0.01): never stops.
    ([1.0, 1e-4, 1.5e-3, 1e-4], None),
    # Early in a fit (best 0.1): back above that geometric mean but only 5x its best: passes.
    ([1.0, 0.1, 0.5, 0.1], None),
    # NaN stops at once.
    ([1.0, 1e-2, math.nan], 2),
])
def test_probe_guard_stops_an_undone_fit_not_a_spike(values, stops_at):
  guard = callbacks.StopOnDivergence()
  guard.set_model(ScriptedProbe(values))
  guard.on_train_begin()
  for check in range(1, len(values)):
    if check == stops_at:
      with pytest.raises(callbacks.Diverged, match="probe batch"):
        guard.check_probe()
      return
    guard.check_probe()
  assert stops_at is None
