"""Surrogate likelihood (KMR): networks fitted to particle-filter log-likelihoods on Sobol draws.

Only the estimated parameters vary (`names`, a subset of the economy's); the others sit at
`fixed` values. The network sees the estimated parameters min-max scaled to [-1, 1] and predicts
the log-likelihood standardised by the training set's mean and std; `Surrogate` undoes both, so
`surrogate(theta_est [n, k]) -> [n]` is in log-likelihood units and differentiable (HMC/NUTS).

The network is an ensemble: `members` MLPs that differ only in their initial weights, fitted side
by side in one Keras model (each layer one `EinsumDense` over `[batch, members, units]`), and
the surrogate is their mean. One fit's variance moves the posterior by more than the filter's
error at these data sizes; the mean removes the part of it the members do not share
(BUILD_NOTES.md, "The surrogate's variance"), and their spread (`Surrogate.members`) shows it.

Files: `surrogate.keras` (the bare Keras 3 net, loadable with safe_mode) + `surrogate.json`
(names, box, fixed values, scaling), and a SavedModel `saved_model/` whose `serving_default`
takes one float32 `[None]` tensor per estimated parameter and returns
`{"log_likelihood": [None]}`, like the policy exports.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from nk_keras import export, network
from nk_keras.errors import UserError
from nk_keras.estimation.pipeline import validation_count
from nk_keras.estimation.data import DataError


def _first_inside(economy, names, fixed, n, draw, what):
  """The first `n` full parameter vectors `[n, P]` (float64) of `draw(size) -> [size, k]` (the
  estimated parameters, `names`; the others at `fixed` `[P]`) that lie in the box and in the
  economy's domain (`in_domain`: outside it there is no equilibrium and the policy was not
  trained), drawing twice as many until there are enough; `what` names the draws in the error."""
  idx = [economy.param_names.index(n_) for n_ in names]
  size = n
  while True:
    theta = np.tile(np.asarray(fixed, np.float64), (size, 1))
    theta[:, idx] = draw(size)
    inside = (np.all((theta[:, idx] >= economy.box_low[idx]) &
                     (theta[:, idx] <= economy.box_high[idx]), axis=1) &
              economy.in_domain(tf.constant(theta, tf.float32)).numpy())
    if inside.sum() >= n:
      return theta[inside][:n]
    if size >= 64 * n:
      raise UserError(f"fewer than {n} of {size} {what} of {', '.join(names)} lie in the box "
                      f"where {economy.name} has an equilibrium: {economy.domain_reason()}")
    size *= 2


def sobol_thetas(economy, names, fixed, n, skip=0):
  """`n` full parameter vectors `[n, P]` (float64): the first `n` points of a Sobol sequence over
  the box of `names` that lie in the economy's domain, the other parameters at `fixed` `[P]`.
  `skip` skips the start of the sequence (its first point, the box's corner, is kept at skip=0
  as KMR do)."""
  idx = [economy.param_names.index(n_) for n_ in names]
  low, high = economy.box_low[idx], economy.box_high[idx]

  def draw(size):
    unit = tf.math.sobol_sample(len(idx), size, skip=skip, dtype=tf.float64).numpy()   # [size, k]
    return low + unit * (high - low)
  return _first_inside(economy, names, fixed, n, draw, "Sobol points of the box")


def posterior_thetas(economy, names, fixed, samples, n, widen):
  """`n` full parameter vectors `[n, P]` (float64) where a first posterior puts its mass: a
  quasi-random normal (Sobol points through the normal quantile) with the mean and the
  covariance of `samples` `[..., k]` (the chains' draws), its std scaled by `widen` so that the
  tails are drawn too, kept where the box and the domain are; the other parameters at `fixed`
  `[P]`."""
  samples = np.asarray(samples, np.float64).reshape(-1, len(names))
  mean = samples.mean(axis=0)
  chol = np.linalg.cholesky(np.atleast_2d(np.cov(samples, rowvar=False)))     # [k, k]

  def draw(size):
    # skip=1: the sequence's first point is 0, whose normal quantile is -inf.
    unit = tf.math.sobol_sample(len(names), size, skip=1, dtype=tf.float64)
    return mean + widen * tf.math.ndtri(unit).numpy() @ chol.T
  return _first_inside(economy, names, fixed, n, draw, "draws around the first posterior")


def check_split(n, validation):
  """A UserError unless `validation` of `n` draws leaves both sets non-empty."""
  held = validation_count(n, validation)
  if not 1 <= held < n:
    raise UserError(f"--validation={validation:g} of --draws={n} holds out {held} draws; "
                    f"the surrogate needs at least one validation draw and one to fit")


def make_dataset(economy, particle_filter, names, theta, seed=0, validation=0.1,
                 progress=False, desc="PF on Sobol draws"):
  """(theta, PF log-likelihood) on the draws `theta` `[n, P]` (`sobol_thetas`,
  `posterior_thetas`), split at random into train and validation.

  Returns a dict of NumPy arrays: `theta` `[m, P]`, `log_likelihood` `[m]`, `is_validation`
  `[m]` bool, `index` `[m]` (each row's position among the `n` draws), and `seconds` (PF wall
  time) and `dropped` (n - m: draws whose log-likelihood is -inf, where a solved policy finds no
  equilibrium). A DataError if any log-likelihood is NaN or +inf: a surrogate fitted to them
  would be NaN everywhere."""
  n = len(theta)
  check_split(n, validation)
  start = time.perf_counter()
  loglik = particle_filter(theta, seed=seed, progress=progress, desc=desc)
  seconds = time.perf_counter() - start
  bad = np.isnan(loglik) | (loglik == np.inf)
  if bad.any():
    i = int(np.argmax(bad))
    where = ", ".join(f"{m}={theta[i, j]:.4g}" for j, m in enumerate(economy.param_names)
                      if m in names)
    raise DataError(f"the particle filter's log-likelihood is not finite at {int(bad.sum())} of "
                    f"{n} draws (e.g. {loglik[i]} at {where}); check that the data are in "
                    f"{economy.observable_units}")
  index = np.flatnonzero(np.isfinite(loglik))
  check_split(len(index), validation)
  order = np.random.default_rng([seed, 11]).permutation(len(index))
  is_validation = np.zeros(len(index), bool)
  is_validation[order[:validation_count(len(index), validation)]] = True
  return {"theta": theta[index], "log_likelihood": loglik[index], "is_validation": is_validation,
          "index": index, "seconds": seconds, "dropped": n - len(index)}


def merge(first, second, n_first):
  """Two datasets as one, the second's draws numbered after the `n_first` draws of the first."""
  both = {k: np.concatenate([first[k], second[k]])
          for k in ("theta", "log_likelihood", "is_validation")}
  return {**both, "index": np.concatenate([first["index"], n_first + second["index"]]),
          "seconds": first["seconds"] + second["seconds"],
          "dropped": first["dropped"] + second["dropped"]}


def save_dataset(path, dataset, names):
  np.savez(path, estimated=np.array(names), **dataset)


def load_dataset(path):
  """`save_dataset`'s dict back (scalars as Python numbers)."""
  with np.load(path) as f:
    return {k: (f[k].item() if f[k].ndim == 0 else f[k]) for k in f.files if k != "estimated"}


def build_ensemble(n_inputs, members, width=128, depth=4, activation="celu", seed=0):
  """`members` MLPs side by side: `[n, n_inputs] -> [n, members]`, `depth` hidden layers of
  `width` units each. Each member's weights start Glorot-uniform for its own fan-in and fan-out
  (Keras' Glorot initialiser would count the members axis into the fans)."""
  network.check_activation(activation)
  sizes = [n_inputs] + [width] * depth + [1]

  def init(i):
    limit = float(np.sqrt(6.0 / (sizes[i] + sizes[i + 1])))
    return keras.initializers.RandomUniform(-limit, limit, seed=seed + i)

  inputs = keras.Input((n_inputs,), name="scaled_parameters")
  h = keras.layers.EinsumDense("bi,miu->bmu", (members, width), bias_axes="mu",
                               activation=activation, kernel_initializer=init(0),
                               name="hidden_0")(inputs)
  for i in range(1, depth):
    h = keras.layers.EinsumDense("bmi,miu->bmu", (members, width), bias_axes="mu",
                                 activation=activation, kernel_initializer=init(i),
                                 name=f"hidden_{i}")(h)
  outputs = keras.layers.EinsumDense("bmi,mi->bm", (members,), bias_axes="m",
                                     kernel_initializer=init(depth), name="log_likelihood")(h)
  return keras.Model(inputs, outputs, name="surrogate_ensemble")


class Surrogate:
  """`surrogate(theta_est [n, k]) -> log-likelihood [n]` (float32 tensor), differentiable: the
  mean of the ensemble's members (`members(theta_est) -> [n, members]`)."""

  def __init__(self, economy, net, names, fixed, y_mean, y_std):
    self.economy, self.net, self.names = economy, net, tuple(names)
    self.idx = [economy.param_names.index(n) for n in names]
    self.fixed = np.asarray(fixed, np.float64)
    self.low = economy.box_low[self.idx].astype(np.float32)
    self.high = economy.box_high[self.idx].astype(np.float32)
    self.y_mean, self.y_std = float(y_mean), float(y_std)

  def scale(self, theta_est):
    return 2.0 * (theta_est - self.low) / (self.high - self.low) - 1.0

  def members(self, theta_est):
    theta_est = tf.cast(theta_est, tf.float32)
    return self.net(self.scale(theta_est)) * self.y_std + self.y_mean

  def __call__(self, theta_est):
    return tf.reduce_mean(self.members(theta_est), axis=1)

  def predict(self, theta_full, members=False):
    """NumPy `[n, P]` full parameter vectors -> `[n]` float64 (`[n, members]` if `members`)."""
    theta_est = np.asarray(theta_full, np.float32)[:, self.idx]
    f = self.members if members else self
    return np.concatenate([f(theta_est[i:i + 65536]).numpy()
                           for i in range(0, len(theta_est), 65536)]).astype(np.float64)

  def config(self):
    return {"economy": self.economy.name, "estimated": list(self.names),
            "fixed": {n: float(v) for n, v in zip(self.economy.param_names, self.fixed)
                      if n not in self.names},
            "box": {n: [float(lo), float(hi)] for n, lo, hi in zip(self.names, self.low, self.high)},
            "y_mean": self.y_mean, "y_std": self.y_std}

  def save(self, directory, metadata=None):
    """Writes `surrogate.keras`, `surrogate.json` and the SavedModel `saved_model/`."""
    os.makedirs(directory, exist_ok=True)
    self.net.save(os.path.join(directory, "surrogate.keras"))
    with open(os.path.join(directory, "surrogate.json"), "w") as f:
      json.dump({**self.config(), **(metadata or {})}, f, indent=2)
    module = _ServedSurrogate(self)
    path = os.path.join(directory, "saved_model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    with open(os.path.join(path, export.METADATA), "w") as f:
      json.dump({**self.config(), **(metadata or {}),
                 "signature": {"inputs": list(self.names), "outputs": ["log_likelihood"]},
                 "versions": export.versions(), "git_commit": export.git_commit()}, f, indent=2)
    return directory

  @classmethod
  def load(cls, economy, directory):
    with open(os.path.join(directory, "surrogate.json")) as f:
      cfg = json.load(f)
    net = keras.saving.load_model(os.path.join(directory, "surrogate.keras"), safe_mode=True)
    fixed = economy.theta_from(cfg["fixed"]).astype(np.float64)
    return cls(economy, net, cfg["estimated"], fixed, cfg["y_mean"], cfg["y_std"])


class _ServedSurrogate(tf.Module):
  def __init__(self, surrogate):
    super().__init__()
    self.net = surrogate.net
    self._surrogate = surrogate
    spec = [tf.TensorSpec([None], tf.float32, name=n) for n in surrogate.names]
    self.serve = tf.function(self._serve, input_signature=spec)

  def _serve(self, *inputs):
    return {"log_likelihood": self._surrogate(tf.stack(inputs, axis=1))}


class _Progress(keras.callbacks.Callback):
  def __init__(self, rounds, steps_per_round, enabled):
    super().__init__()
    self.steps = steps_per_round
    self.bar = tqdm(total=rounds * steps_per_round, desc="surrogate fit", unit="step",
                    disable=not enabled, mininterval=2.0)

  def on_epoch_end(self, epoch, logs=None):
    self.bar.set_postfix(loss=f"{logs['loss']:.2e}", val=f"{logs.get('val_loss', np.nan):.2e}")
    self.bar.update(self.steps)

  def on_train_end(self, logs=None):
    self.bar.close()


def fit(economy, dataset, names, fixed, width=128, depth=4, activation="celu", steps=20000,
        batch=256, lr=1e-3, seed=0, members=5, progress=False, check_every=200):
  """Fits the surrogate's `members` networks on the training part of `dataset` with `steps`
  Adam steps (cosine decay), checking the validation loss (the members' mean squared error,
  averaged) every `check_every` steps and keeping the best weights. Counted in steps, not
  epochs: a small dataset would otherwise spend its time in per-epoch overhead. The members
  share no weight, so each one's gradient is its own loss's (over `members`, which Adam's
  scaling removes): together they are fitted as each would be alone on the same batches.
  Returns `(Surrogate, history dict)`."""
  keras.utils.set_random_seed(seed)
  idx = [economy.param_names.index(n) for n in names]
  train, val = ~dataset["is_validation"], dataset["is_validation"]
  y = dataset["log_likelihood"]
  y_mean, y_std = float(y[train].mean()), float(y[train].std())
  net = build_ensemble(len(idx), members, width, depth, activation, seed)
  surrogate = Surrogate(economy, net, names, fixed, y_mean, y_std)
  x = surrogate.scale(dataset["theta"][:, idx].astype(np.float32))
  z = ((y - y_mean) / y_std).astype(np.float32)[:, None]
  rounds = max(1, int(steps) // check_every)
  batches = (tf.data.Dataset.from_tensor_slices((x[train], z[train]))
             .shuffle(int(train.sum()), seed=seed, reshuffle_each_iteration=True)
             .repeat().batch(min(batch, int(train.sum()))))
  # XLA and one compiled call per check: 2.2x faster on 2 CPU cores than Keras' default of one
  # graph call per step (BUILD_NOTES.md, "The surrogate fit, compiled"); the updates are the same.
  net.compile(optimizer=keras.optimizers.Adam(
      keras.optimizers.schedules.CosineDecay(lr, rounds * check_every, alpha=1e-3)), loss="mse",
      jit_compile=True, steps_per_execution=check_every)
  best = keras.callbacks.EarlyStopping("val_loss", patience=rounds, restore_best_weights=True)
  history = net.fit(batches, epochs=rounds, steps_per_epoch=check_every, verbose=0, shuffle=False,
                    validation_data=(x[val], z[val]),
                    callbacks=[best, _Progress(rounds, check_every, progress)])
  return surrogate, history.history


def held_out(surrogate, dataset):
  """The surrogate against its filter on the validation draws, all and the top 10 % by
  log-likelihood (where the posterior is), and the members' spread there (their std, averaged
  over the draws: the fit's own variance, 0 for one member)."""
  val = dataset["is_validation"]
  y = dataset["log_likelihood"][val]
  members = surrogate.predict(dataset["theta"][val], members=True)      # [n_val, members]
  mean, spread = members.mean(axis=1), members.std(axis=1)
  top = y >= np.quantile(y, 0.9)
  return {"surrogate_vs_pf_validation": errors(mean, y),
          "surrogate_vs_pf_validation_top10pct": errors(mean[top], y[top]),
          "members_spread_validation": float(spread.mean()),
          "members_spread_validation_top10pct": float(spread[top].mean())}


def errors(predicted, reference):
  """Summary of `predicted - reference` (log-likelihood units)."""
  e = np.asarray(predicted) - np.asarray(reference)
  return {"mean": float(e.mean()), "mae": float(np.abs(e).mean()),
          "rmse": float(np.sqrt((e ** 2).mean())),
          "p95_abs": float(np.percentile(np.abs(e), 95)), "max_abs": float(np.abs(e).max()),
          "n": int(e.size)}
