"""One training run: options -> regime, optimiser, schedule, `fit` with callbacks."""

import dataclasses
import os

import keras
import tensorflow as tf

from nk_keras import callbacks as nk_callbacks
from nk_keras import economies, regimes
from nk_keras.network import ExtendedPolicy


@dataclasses.dataclass
class TrainOptions:
  """Every option of a run. Defaults: the shipped models' settings but a short run (see
  BUILD_NOTES.md for why each was chosen)."""
  regime: str = "stepping"
  economy: str = "nk"
  iterations: int = 2000
  internal: int = 5
  num_steps: int = 10
  redraw_every: int = 1
  pool: int = 200_000
  batch: int = 1000
  mc: int = 2
  lr: float = 3e-3
  eta_min: float = 3e-6
  weight_decay: float = 1e-4
  clipnorm: float = 1.0
  lambda_x: float = 1.0
  lambda_pi: float = 1.0
  width: int = 64
  depth: int = 5
  activation: str = "tanh"
  normalization: str = "ergodic_slope"
  weighting: str = "relative"
  seed: int = 0
  steps_per_execution: int = 100
  jit_compile: bool = True

  @property
  def gradient_steps(self):
    """Iterations of `fresh`/`cached` are single gradient steps; the others take `internal`."""
    per_iteration = self.internal if self.regime in ("internal", "stepping") else 1
    return self.iterations * per_iteration


def build_regime(options):
  """Policy and compiled regime for `options`."""
  economy = economies.get(options.economy)
  policy = ExtendedPolicy.create(economy, options.normalization, seed=options.seed,
                                 width=options.width, depth=options.depth,
                                 activation=options.activation)
  regime_options = dict(batch=options.batch, mc=options.mc, seed=options.seed,
                        loss_weights=(options.lambda_x, options.lambda_pi),
                        weighting=options.weighting)
  if options.regime == "cached":
    regime_options["pool"] = options.pool
  if options.regime in ("internal", "stepping"):
    regime_options["internal"] = options.internal
  if options.regime == "stepping":
    regime_options.update(num_steps=options.num_steps, redraw_every=options.redraw_every)
  model = regimes.build(options.regime, policy, **regime_options)
  steps = options.gradient_steps
  schedule = keras.optimizers.schedules.CosineDecay(
      options.lr, decay_steps=steps, alpha=options.eta_min / options.lr)
  optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=options.weight_decay,
                                     global_clipnorm=options.clipnorm)
  model.compile(optimizer=optimizer, jit_compile=options.jit_compile,
                steps_per_execution=options.steps_per_execution)
  return model


def fit(model, options, steps_per_epoch=None, callbacks=(), verbose=True):
  """Runs the whole schedule; an epoch is `steps_per_epoch` gradient steps (one history row)."""
  total = options.gradient_steps
  spe = steps_per_epoch or max(1, min(total, 1000))
  per_call = min(options.steps_per_execution, spe)
  spe -= spe % per_call                               # whole compiled calls per epoch
  model.steps_per_execution = per_call
  epochs = -(-total // spe)
  # The points come from the regime; the dataset only paces `fit`.
  ticks = tf.data.Dataset.from_tensors(0.0).repeat()
  cbs = [nk_callbacks.WallTime()] + list(callbacks)
  if verbose:
    cbs.append(nk_callbacks.Progress(epochs * spe))
  return model.fit(ticks, epochs=epochs, steps_per_epoch=spe, callbacks=cbs, verbose=0,
                   shuffle=False)


def run(options, out, log_every=1000, tensorboard=False, verbose=True):
  """Trains per `options`, logging to `<out>/history.csv`; saves the policy into `out`."""
  model = build_regime(options)
  path = os.path.join(out, "history.csv")
  if os.path.exists(path):
    os.remove(path)
  cbs = [nk_callbacks.HistoryCSV(path)]
  if tensorboard:
    cbs.append(keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")))
  history = fit(model, options, steps_per_epoch=log_every, callbacks=cbs, verbose=verbose)
  model.policy.save(out)
  return model, history
