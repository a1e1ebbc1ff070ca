"""Run as a script by the tests in a process that cannot import nk_keras: loads a SavedModel with
plain TensorFlow and measures it against a NumPy closed form written here independently.

  python -I isolated_check.py MODEL_DIR [MODEL_DIR ...] N_THETA SEED  ->  one JSON line per model

Several models in one process: each process spends seconds importing TensorFlow.
"""

import json
import sys

# `python -I` keeps the repository off sys.path, but CI installs nk_keras (editable) into
# site-packages: a None entry in sys.modules makes every `import nk_keras...` raise ImportError.
sys.modules["nk_keras"] = None

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

NAMES = ["beta", "sigma", "eta", "phi", "phi_pi", "phi_y", "rho_a", "sigma_a"]
LOW = np.array([0.95, 1.0, 0.25, 0.5, 1.25, 0.0, 0.8, 0.02])
HIGH = np.array([0.99, 3.0, 2.0, 0.9, 2.5, 0.5, 0.95, 0.1])
CAL = np.array([0.97, 2.0, 1.125, 0.7, 1.875, 0.25, 0.875, 0.06])


def closed_form(zeta, p):
  kappa = (1 - p["phi"]) * (1 - p["phi"] * p["beta"]) * (p["sigma"] + p["eta"]) / p["phi"]
  D = ((p["sigma"] * (1 - p["rho_a"]) + p["phi_y"]) * (1 - p["beta"] * p["rho_a"])
       + kappa * (p["phi_pi"] - p["rho_a"]))
  return (1 - p["beta"] * p["rho_a"]) / D * zeta, kappa / D * zeta


def sigma_erg(p):
  omega = (1 + p["eta"]) / (p["sigma"] + p["eta"])
  s_eps = p["sigma_a"] * p["sigma"] * (p["rho_a"] - 1) * omega
  return np.abs(s_eps) / np.sqrt(1 - p["rho_a"] ** 2)


def main(path, n, seed):
  serve = tf.saved_model.load(path).signatures["serving_default"]
  theta = LOW + (HIGH - LOW) * np.random.default_rng(seed).random((n, 8))
  p = {k: theta[:, i] for i, k in enumerate(NAMES)}
  std = sigma_erg(p)
  scale_X, scale_Pi = (np.abs(v) for v in closed_form(std, p))
  errs = {"X": [], "Pi": []}
  feeds = {k: tf.constant(v, tf.float32) for k, v in p.items()}
  for k in (-2, -1, 0, 1, 2):
    out = serve(zeta=tf.constant(k * std, tf.float32), **feeds)
    X, Pi = closed_form(k * std, p)
    errs["X"].append(np.abs(out["X"].numpy() - X) / scale_X)
    errs["Pi"].append(np.abs(out["Pi"].numpy() - Pi) / scale_Pi)
  result = {}
  cal = {k: tf.constant([v], tf.float32) for k, v in zip(NAMES, CAL)}
  out = serve(zeta=tf.constant([0.01]), **cal)
  exact = closed_form(0.01, dict(zip(NAMES, CAL)))
  for j, name in enumerate(("X", "Pi")):
    e = 100 * np.concatenate(errs[name])
    result[name] = {"mean": float(e.mean()), "p95": float(np.percentile(e, 95)),
                    "max": float(e.max()),
                    "cal": float(100 * abs(out[name].numpy()[0] - exact[j]) / abs(exact[j]))}
  print(json.dumps(result))


if __name__ == "__main__":
  for model in sys.argv[1:-2]:
    main(model, int(sys.argv[-2]), int(sys.argv[-1]))
