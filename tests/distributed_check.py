"""Run as a script by tests/test_distribute.py: logical CPU devices must be set up before TF
initialises its devices, which the pytest process has already done.

  python tests/distributed_check.py mirrored      ->  one JSON line per regime on stdout
  python tests/distributed_check.py one_replica   ->  one JSON line
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nk_keras import distribute  # noqa: E402

MODE = sys.argv[1]
distribute.split_cpu(2 if MODE == "mirrored" else 1)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nk_keras import training  # noqa: E402

SHORT = dict(mc=2, lr=3e-3, eta_min=3e-6, seed=1, batch=200)
RUNS = {"fresh": dict(iterations=300), "cached": dict(iterations=300, pool=2000),
        "internal": dict(iterations=100, internal=3),
        "stepping": dict(iterations=100, internal=3, num_steps=10)}


def options(regime, **extra):
  return training.TrainOptions(regime=regime, **SHORT, **RUNS[regime], **extra)


def local(strategy, value):
  return [t.numpy() for t in strategy.experimental_local_results(value)]


def shared_values(a, b):
  """How many values two replicas' arrays have in common (independent draws: none)."""
  return int(np.intersect1d(np.ravel(a), np.ravel(b)).size)


def draw_and_gradient(model, strategy, step):
  """Per replica: the points, shocks and loss of gradient step `step`, and the gradient share
  that `Regime.train_step` hands the optimiser."""
  def replica_fn():
    seeds = model.step_seeds(step, 4)
    theta, state = model.points(step, seeds[:3])
    eps = model.economy.draw_shocks(model.mc, model.batch, seeds[3])
    with tf.GradientTape() as tape:
      loss = model.residual_loss(theta, state, eps)[0]
      share = loss / model.replicas
    grads = model.global_gradient_share(tape.gradient(share, model.trainable_variables))
    return theta, state, eps, grads
  return strategy.run(tf.function(replica_fn))


def mirrored():
  strategy = distribute.create("mirrored")
  assert strategy.num_replicas_in_sync == 2
  for regime in RUNS:
    opts = options(regime)
    model = training.build_regime(opts, strategy)
    theta, state, eps, grads = draw_and_gradient(model, strategy, tf.constant(7, tf.int64))
    (t0, t1), (s0, s1), (e0, e1) = (local(strategy, v) for v in (theta, state, eps))
    # The global mean loss over both replicas' points, on one device, and its gradient.
    with tf.GradientTape() as tape:
      global_loss = 0.5 * (model.residual_loss(t0, s0, e0)[0] + model.residual_loss(t1, s1, e1)[0])
    expected = tape.gradient(global_loss, model.trainable_variables)
    shares = [local(strategy, g) for g in grads]
    grad_error = max(float(np.max(np.abs(a + b - e.numpy())) / np.max(np.abs(e.numpy())))
                     for (a, b), e in zip(shares, expected))
    history = training.fit(model, opts, steps_per_epoch=opts.gradient_steps // 4, verbose=False)
    result = {"regime": regime, "replicas": model.replicas, "batch": model.batch,
              "shared_theta": shared_values(t0, t1), "shared_state": shared_values(s0, s1),
              "shared_eps": shared_values(e0, e1), "grad_rel_error": grad_error,
              "loss": [float(np.ravel(v)[0]) for v in history.history["loss"]],
              "steps": int(model.optimizer.iterations.numpy())}
    if regime in ("internal", "stepping"):
      p0, p1 = local(strategy, model.state.value)
      result["shared_persistent_state"] = shared_values(p0, p1)
    print(json.dumps(result), flush=True)


def one_replica():
  strategy = distribute.create("mirrored")
  assert strategy.num_replicas_in_sync == 1
  same = {}
  # 100 gradient steps each, in two compiled calls per epoch of 50.
  for regime, iterations in (("cached", 100), ("stepping", 34)):
    opts = options(regime, steps_per_execution=25)
    opts.iterations = iterations
    weights = []
    for under in (None, strategy):
      model = training.build_regime(opts, under)
      training.fit(model, opts, steps_per_epoch=50, verbose=False)
      weights.append(model.net.get_weights())
    same[regime] = all(np.array_equal(a, b) for a, b in zip(*weights))
  print(json.dumps(same))


if __name__ == "__main__":
  {"mirrored": mirrored, "one_replica": one_replica}[MODE]()
