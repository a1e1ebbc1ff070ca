"""Issue 28: runs that lose work, lie in their records, or eat the machine. Each test here was
seen to fail with its guard removed (BUILD_NOTES.md, "Injected bugs")."""

import csv
import os
import shutil

import keras
import numpy as np
import pytest

from nk_keras import training
from nk_keras.network import ExtendedPolicy


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


def test_a_run_takes_exactly_its_gradient_steps(tmp_path):
  # 150 steps with rows every 100: the last row is a shorter epoch, not 50 steps more.
  model, _ = training.run(short(iterations=150), str(tmp_path / "a"), log_every=100,
                          verbose=False)
  assert int(model.optimizer.iterations.numpy()) == 150
  assert history_steps(tmp_path / "a") == [100, 150]
  assert training.epochs_of(150, 1000, 100) == (150, 50, 1, 0, 0)
  assert training.epochs_of(2501, 1000, 100) == (1000, 100, 2, 501, 1)
