"""Section 5: evaluations/s of an exported SavedModel against the economy's own closed form."""

import os
import statistics
import tempfile
import time

import numpy as np

from benchmarks.speed.common import table

# Calibration, zeta = 0.01 (docs/models.md, "Closed form"): the closed form's check point.
CHECK_POINT = {"X": 0.002992, "Pi": 0.008504}


def serving_inputs(economy, n, seed=0):
  """`n` points: theta uniform on the box, the state drawn from its ergodic distribution; a dict
  of float32 `[n]` arrays named as the serving signature's inputs."""
  rng = np.random.default_rng(seed)
  theta = rng.uniform(economy.box_low, economy.box_high, (n, economy.n_params))
  std = np.asarray(economy.ergodic_std(theta))                        # [n, n_state]
  feeds = dict(zip(economy.state_names, (std * rng.standard_normal(std.shape)).T))
  feeds.update(zip(economy.param_names, theta.T))
  return {k: v.astype(np.float32) for k, v in feeds.items()}


def median_rate(fn, n, repeats):
  """Evaluations/s of `fn()` over `n` points: median of `repeats` calls after two warm-ups."""
  fn(), fn()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return n / statistics.median(seconds)


def run(s, out):
  import tensorflow as tf
  from nk_keras import economies, export, training
  from nk_keras.network import ExtendedPolicy
  d = training.TrainOptions()
  economy = economies.get("nk")
  # The economy's closed form, compiled like the served graph: the same work without a network.
  closed_form = tf.function(economy.closed_form, jit_compile=True)
  at = closed_form(tf.constant([[0.01]]), tf.constant(economy.calibration[None], tf.float32))
  check = dict(zip(economy.policy_names, at.numpy()[0].astype(float)))
  for name, value in CHECK_POINT.items():
    if abs(check[name] - value) > 5e-7:
      raise AssertionError(f"closed form {name} = {check[name]:.6f}, expected {value}")
  policy = ExtendedPolicy.create(economy, d.normalization, seed=0, width=d.width, depth=d.depth,
                                 activation=d.activation)
  n, repeats = s["serve_batch"], max(5, s["repeats"])
  inputs = serving_inputs(economy, n)
  feeds = {k: tf.constant(v) for k, v in inputs.items()}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "saved_model")
    export.export(policy, path, {"regime": "untrained (benchmark)"})
    start = time.perf_counter()
    serve = tf.saved_model.load(path).signatures["serving_default"]
    load_s = time.perf_counter() - start
    served = median_rate(lambda: serve(**feeds), n, repeats)
  state = tf.stack([feeds[n] for n in economy.state_names], axis=1)   # [n, n_state]
  theta = tf.stack([feeds[p] for p in economy.param_names], axis=1)
  closed_rate = median_rate(lambda: closed_form(state, theta).numpy(), n, repeats)
  out["serving"] = {"batch": n, "repeats": repeats, "network": f"{d.depth}x{d.width} "
                    f"{d.activation}, {d.normalization}", "load_s": load_s,
                    "saved_model_evals_per_s": served, "closed_form_evals_per_s": closed_rate,
                    "closed_form_check": check}
  print(f"\n5. Served policy throughput (batch {n:,}, median of {repeats}; one evaluation = X "
        f"and Pi at one point)")
  table(["function", "evaluations/s", "ms per call"],
        [["SavedModel serving_default", f"{served:,.0f}", f"{1e3 * n / served:.2f}"],
         ["closed form (the economy's, XLA)", f"{closed_rate:,.0f}",
          f"{1e3 * n / closed_rate:.2f}"]])
  print(f"SavedModel load {load_s:.2f} s; closed-form check at the calibration, zeta = 0.01: "
        f"X {check['X']:.6f}, Pi {check['Pi']:.6f}")
