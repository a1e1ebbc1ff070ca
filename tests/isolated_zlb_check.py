"""Run as a script by the tests in a process that cannot import nk_keras: loads a rank_zlb
SavedModel with plain TensorFlow and measures it against the independent NumPy time iteration of
tests/zlb_reference.py (the bar of the nonlinear-economy issue).

  python -I isolated_zlb_check.py MODEL_DIR N_THETA SEED  ->  one JSON line on stdout

Errors: |log f_nn - log f_ref| / sd_erg(log f_ref) in percent, f = N and Pi, at zeta = k
sigma_erg, k in -2.5..2.5 (step 0.5), over thetas uniform on the box where the model says it is
in its domain (`in_box`) and the reference converges. At the true theta: ergodic ZLB frequency
and unit-free Euler errors log10|1 - C_implied / C| on ergodic draws of zeta.
"""

import dataclasses
import json
import math
import os
import sys

# `python -I` keeps the repository off sys.path, but CI installs nk_keras (editable) into
# site-packages: a None entry in sys.modules makes every `import nk_keras...` raise ImportError.
sys.modules["nk_keras"] = None

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zlb_reference as Z  # noqa: E402

LEVELS = np.arange(-2.5, 2.51, 0.5)


def served(model, zeta, theta):
  """N, Pi, R levels (float64) of the SavedModel at zeta `[m]`, theta `[m, 5]`."""
  feeds = {"zeta": tf.constant(zeta, tf.float32)}
  feeds.update({n: tf.constant(theta[:, i], tf.float32) for i, n in enumerate(Z.NAMES)})
  out = model.signatures["serving_default"](**feeds)
  return [out[k].numpy().astype(np.float64) for k in ("N", "Pi", "R")]


def in_box(model, theta):
  feeds = {"zeta": tf.zeros([len(theta)])}
  feeds.update({n: tf.constant(theta[:, i], tf.float32) for i, n in enumerate(Z.NAMES)})
  return model.signatures["in_box"](**feeds)["in_box"].numpy()


def euler_errors(model, theta, zeta, n_nodes=80):
  """log10|1 - C_implied/C| at zeta `[m]` for one theta `[5]`, expectations by Gauss-Hermite."""
  x, w = np.polynomial.hermite.hermgauss(n_nodes)
  eps, w = x * math.sqrt(2.0), w / math.sqrt(math.pi)
  m = len(zeta)
  th = np.repeat(theta[None], m, axis=0)
  N, Pi, R = served(model, zeta, th)
  nxt = theta[3] * zeta[None] + theta[4] * eps[:, None]                          # [K, m]
  N1, Pi1, _ = served(model, nxt.reshape(-1), np.repeat(th, n_nodes, axis=0))
  N1, Pi1 = N1.reshape(n_nodes, m), Pi1.reshape(n_nodes, m)
  expectation = w @ (np.exp(nxt - zeta[None]) * N1 ** -Z.SIGMA / Pi1)
  # exp(zeta) C_implied^-sigma = beta R E[exp(zeta') C'^-sigma / Pi'], with C = N.
  c_implied = (Z.BETA * R * expectation) ** (-1 / Z.SIGMA)
  return np.log10(np.abs(1 - c_implied / N))


def zlb_frequency(model, theta, points=24001, span=6.0):
  """Ergodic probability that the network's notional rate is below 1, on a fine zeta grid."""
  se = theta[4] / math.sqrt(1 - theta[3] ** 2)
  z = np.linspace(-span, span, points)
  N, Pi, _ = served(model, z * se, np.repeat(theta[None], points, axis=0))
  log_notional = Z.LOG_RBAR + theta[0] * (np.log(Pi) - Z.LOG_PIBAR) + theta[1] * np.log(N / Z.YBAR)
  density = np.exp(-0.5 * z ** 2)
  return float(np.sum(density * (log_notional < 0)) / np.sum(density))


def main(path, n_theta, seed):
  model = tf.saved_model.load(path)
  rng = np.random.default_rng(seed)
  theta = Z.LOWER + rng.uniform(size=(n_theta, 5)) * (Z.UPPER - Z.LOWER)
  served_domain = in_box(model, theta)
  sol = Z.solve(theta[served_domain])
  ok = sol.converged
  kept = theta[served_domain][ok]
  sol = dataclasses.replace(sol, **{f.name: getattr(sol, f.name)[ok] for f in
                                    dataclasses.fields(sol) if f.type is np.ndarray})
  zeta = Z.sigma_erg(kept)[:, None] * LEVELS[None]                               # [n, L]
  ref = np.stack(Z.policy(sol, zeta), -1)                                        # [n, L, 2]
  N, Pi, _ = served(model, zeta.reshape(-1), np.repeat(kept, len(LEVELS), axis=0))
  nn = np.stack([np.log(N), np.log(Pi)], -1).reshape(ref.shape)
  err = 100 * np.abs(nn - ref) / Z.ergodic_sd(sol)[:, None, :]
  out = {"n_theta": int(len(kept)), "served_without_reference": int((~ok).sum()),
         "served_share": float(served_domain.mean())}
  for j, name in enumerate(("N", "Pi")):
    out[name] = {"mean": float(err[..., j].mean()), "p95": float(np.percentile(err[..., j], 95)),
                 "max": float(err[..., j].max())}
  true = Z.TRUE
  true_sol = Z.solve(true[None])
  out["zlb_frequency"] = {"nn": zlb_frequency(model, true),
                          "reference": float(Z.zlb_frequency(true_sol)[0])}
  draws = np.random.default_rng(seed + 1).standard_normal(10_000) * Z.sigma_erg(true[None])[0]
  ee = euler_errors(model, true, draws)
  out["euler_log10"] = {"mean": float(ee.mean()), "max": float(ee.max())}
  print(json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
