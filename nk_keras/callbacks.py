"""Keras callbacks for long runs: progress with gradient steps/s, and the history as CSV."""

import csv
import math
import os
import sys
import time

import keras
import tensorflow as tf
from tqdm.auto import tqdm


class Progress(keras.callbacks.Callback):
  """One bar for all epochs; `fit`'s own bar restarts every epoch and hides the run's speed."""

  def __init__(self, total_steps):
    super().__init__()
    self.total = total_steps

  def on_train_begin(self, logs=None):
    # Non-terminal output (CI, nohup logs) gets a line every 30 s instead of a redraw storm.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    # Runs after BackupAndRestore's on_train_begin: a resumed run starts where it stopped.
    self.seen = int(self.model.optimizer.iterations.numpy())
    self.bar = tqdm(total=self.total, initial=self.seen, unit="step", mininterval=interval,
                    dynamic_ncols=True, desc="training")

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    self.bar.update(step - self.seen)
    self.seen = step
    if logs and "loss" in logs:
      self.bar.set_postfix(loss=f"{float(logs['loss']):.3e}", refresh=False)

  def on_train_end(self, logs=None):
    self.bar.close()


class PhaseIn(keras.callbacks.Callback):
  """Sets `relaxation` (a variable the economy reads: `Economy.relaxation`) to 1 - step /
  `steps`, down to 0, at every compiled call; from the step alone, so a resumed run agrees."""

  def __init__(self, relaxation, steps):
    super().__init__()
    self.relaxation, self.steps = relaxation, steps

  def on_train_batch_begin(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    self.relaxation.assign(max(0.0, 1.0 - step / self.steps))


class WallTime(keras.callbacks.Callback):
  """Adds the elapsed wall time in seconds to the epoch logs (and so to history.csv)."""

  def on_train_begin(self, logs=None):
    self.start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["wall_s"] = time.perf_counter() - self.start
      logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class HistoryCSV(keras.callbacks.Callback):
  """One row per epoch: gradient step, the logged metrics and wall time, flushed at once (a
  killed run keeps its history); unlike `CSVLogger` it adds no empty validation columns."""

  def __init__(self, path):
    super().__init__()
    self.path = path

  def on_epoch_end(self, epoch, logs=None):
    row = {"step": int(self.model.optimizer.iterations.numpy()),
           **{k: float(v) for k, v in (logs or {}).items()}}
    new = not os.path.exists(self.path)
    with open(self.path, "a", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(row))
      if new:
        writer.writeheader()
      writer.writerow(row)


class Diverged(Exception):
  """`what` says which loss went wrong and how, for the user."""

  def __init__(self, step, lr, loss, reference, what=None):
    self.what = what or f"loss {loss:.3g}, {reference:.3g} at the start"
    super().__init__(f"{self.what} (step {step})")
    self.step, self.lr, self.loss, self.reference = step, lr, loss, reference


class StopOnDivergence(keras.callbacks.Callback):
  """Raises `Diverged` before any checkpoint is written, so the last checkpoint on disk is a good
  one, when
  - the training loss is non-finite or has grown `factor` times above the probe loss at the
    start of `fit` (a blow-up: Keras' TerminateOnNaN ends `fit` normally and misses a finite
    one, which bounded activations and gradient clipping make the usual way to diverge); or
  - at the end of an epoch, the loss on the fixed probe batch (`Regime.probe_loss`) is
    `probe_factor` times above its best so far and has given back more than half of its fall
    from the start in orders of magnitude (above the geometric mean of the start and the best):
    a fit ruined without a blow-up (too high a learning rate that keeps the network thrashing at
    a loss 10-1000x its best). Both conditions, because a healthy run at a high learning rate
    spikes too: on the default 50,000-step schedule the probe loss rose 13.7x above its best
    (5.2e-5 to 7.1e-4, lr 2e-3) and fell back within a few thousand steps.
  """

  def __init__(self, factor=1e3, probe_factor=10.0):
    super().__init__()
    self.factor, self.probe_factor = factor, probe_factor

  def on_train_begin(self, logs=None):
    # Runs after BackupAndRestore. A resumed run takes the start and best of the run it
    # continues from the checkpoint (measured afresh, "start" would be the resume point and a
    # later healthy spike would read as the fit undone).
    saved = self._saved()
    if saved is not None and saved[3] > 0:
      self.reference, self.best, self.best_step = float(saved[0]), float(saved[1]), int(saved[2])
      return
    self.reference = self.probe()
    self.best, self.best_step = self.reference, self.step()
    self._keep()

  def _saved(self):
    state = getattr(self.model, "guard_state", None)
    return None if state is None else keras.ops.convert_to_numpy(state)

  def _keep(self):
    # Before BackupAndRestore's on_epoch_end writes the checkpoint that holds it.
    if getattr(self.model, "guard_state", None) is not None:
      self.model.guard_state.assign([self.reference, self.best, self.best_step, 1.0])

  def step(self):
    return int(self.model.optimizer.iterations.numpy())

  def lr(self):
    return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

  def probe(self):
    """The probe loss; NaN where the network is so far off that it cannot be computed (a
    singular Jacobian of the `newton`/`relative` weightings)."""
    try:
      return self.model.probe_loss()
    except tf.errors.InvalidArgumentError:
      return math.nan

  def on_train_batch_end(self, batch, logs=None):
    loss = float((logs or {}).get("loss", 0.0))
    if not math.isfinite(loss) or loss > self.factor * self.reference:
      raise Diverged(self.step(), self.lr(), loss, self.reference)
    # `batch` is the last step of this compiled call within the epoch: the epoch's last call
    # ends before BackupAndRestore writes the epoch's checkpoint.
    if batch + 1 >= self.params.get("steps", math.inf):
      self.check_probe()

  def check_probe(self):
    probe = self.probe()
    # A start that could not be measured (NaN) leaves the first condition alone to decide.
    undone = probe > self.probe_factor * self.best and not probe**2 <= self.best * self.reference
    if undone or math.isnan(probe):
      raise Diverged(self.step(), self.lr(), probe, self.reference, what=(
          f"the loss on the fixed probe batch rose to {probe:.3g}, {probe / self.best:.3g}x its "
          f"best {self.best:.3g} (gradient step {self.best_step}), more than halfway back in "
          f"orders of magnitude to its start {self.reference:.3g}; the fit is being undone"))
    if probe < self.best:
      self.best, self.best_step = probe, self.step()
      self._keep()
