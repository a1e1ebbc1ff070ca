"""Run as a script by the tests in a process that cannot import nk_keras: loads a hank_zlb
SavedModel with plain TensorFlow and checks it against MODEL.md section 10, written here anew.

  python -I isolated_hank_check.py MODEL_DIR N_THETA SEED [--identities]  ->  one JSON line

(`--identities`: those alone.)

- The served identities at states built here (bonds: 13 % at zero, the rest exponential, scaled
  to Bbar a head; productivity from the chain's stationary law): the bond market, each budget,
  the goods market (N = mean c), the rule with the ZLB; relative errors, max over all.
- Households along ergodic simulations of the served model itself (b' from `b_next`, R_lag'
  from `R`, the chain and the AR(1) drawn here) at the calibration and `N_THETA - 1` thetas
  uniform on the box where `in_box` says the model holds: each household's unit-free Euler
  error |1 - c_implied / c|, the expectation by Gauss-Hermite nodes over zeta, an exact sum
  over its own next productivity and draws of the other households (`euler_errors`); for one
  that saves but would rather consume more, the smaller of that and b' / c (the limit's fix).
"""

import json
import math
import os
import sys

# `python -I` keeps the repository off sys.path, but CI installs nk_keras (editable) into
# site-packages: a None entry in sys.modules makes every `import nk_keras...` raise ImportError.
sys.modules["nk_keras"] = None

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

NAMES = ("theta_pi", "theta_y", "phi", "rho_zeta", "sigma_zeta")
LOW = np.array([1.5, 0.05, 700.0, 0.5, 0.01])
HIGH = np.array([2.5, 0.5, 1300.0, 0.9, 0.025])
TRUTH = np.array([2.0, 0.25, 1000.0, 0.7, 0.02])
BBAR, LOG_PIBAR, SIGMA = 5.6, 0.005, 1.0
LOG_RBAR = LOG_PIBAR - math.log(0.9975)


def chain():
  """Three-state Rouwenhorst chain, persistence 0.966, std of log e 0.5: levels (mean 1 under
  the stationary law), transition, stationary law."""
  p = (1 + 0.966) / 2
  P = np.array([[p * p, 2 * p * (1 - p), (1 - p) ** 2],
                [p * (1 - p), p * p + (1 - p) ** 2, p * (1 - p)],
                [(1 - p) ** 2, 2 * p * (1 - p), p * p]])
  pi = np.array([0.25, 0.5, 0.25])
  e = np.exp(np.array([-1.0, 0.0, 1.0]) * math.sqrt(2) * 0.5)
  return e / (pi @ e), P, pi


E, P, PI = chain()


class Model:
  def __init__(self, path):
    loaded = tf.saved_model.load(path)
    self.fn, self.box = loaded.signatures["serving_default"], loaded.signatures["in_box"]
    with open(os.path.join(path, "assets", "metadata.json")) as f:
      self.meta = json.load(f)
    self.L, self.beta = int(self.meta["agents"]), float(self.meta["beta"])

  def feeds(self, zeta, R_lag, b, e, theta):
    f = {"zeta": zeta, "R_lag": R_lag, "b": b, "e": e}
    f.update({n: theta[:, i] for i, n in enumerate(NAMES)})
    return {k: tf.constant(np.asarray(v, np.float32)) for k, v in f.items()}

  def __call__(self, zeta, R_lag, b, e, theta):
    out = self.fn(**self.feeds(zeta, R_lag, b, e, theta))
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}

  def in_box(self, theta, L):
    m = len(theta)
    ones = np.ones((m, L))
    return self.box(**self.feeds(np.zeros(m), np.full(m, 1.0075), BBAR * ones, ones,
                                 theta))["in_box"].numpy()


def households(rng, m, L):
  b = np.where(rng.uniform(size=(m, L)) < 0.13, 0.0, rng.exponential(6.0, (m, L)))
  b = np.where(b.mean(1, keepdims=True) > 0, b * BBAR / np.maximum(b.mean(1, keepdims=True),
                                                                   1e-12), BBAR)
  return b, E[rng.choice(3, size=(m, L), p=PI)]


def identities(model, rng, theta):
  m, L = len(theta), model.L
  zeta = rng.normal(0, 0.02, m)
  R_lag = np.exp(LOG_RBAR + rng.normal(0, 0.004, m))
  b, e = households(rng, m, L)
  out = model(zeta, R_lag, b, e, theta)
  c, b1, N, Pi, R = (out[k] for k in ("c", "b_next", "N", "Pi", "R"))
  r = R_lag / Pi
  cash = r[:, None] * b + e / e.mean(1, keepdims=True) * (N - (r - 1) * BBAR)[:, None]
  rule = np.maximum(1.0, np.exp(LOG_RBAR) * (Pi / math.exp(LOG_PIBAR)) ** theta[:, 0]
                    * N ** theta[:, 1])
  rel = lambda a, ref: float(np.max(np.abs(a - ref) / np.abs(ref)))
  return {"shapes": [list(c.shape), list(b1.shape), list(N.shape)],
          "finite": bool(all(np.isfinite(v).all() for v in out.values())),
          "b_next_min": float(b1.min()), "c_min": float(c.min()),
          "bond_market": rel(b1.mean(1), np.full(m, BBAR)), "goods_market": rel(c.mean(1), N),
          "budget": rel(c + b1, cash), "rule": rel(R, rule)}


def step(model, rng, zeta, R_lag, b, e, theta, eps=None):
  out = model(zeta, R_lag, b, e, theta)
  eps = rng.normal(size=zeta.shape) if eps is None else eps
  s = np.argmin(np.abs(e[..., None] - E), -1)
  u = rng.uniform(size=s.shape)
  s1 = (u[..., None] > np.cumsum(P, 1)[s][..., :2]).sum(-1)
  return theta[:, 3] * zeta + theta[:, 4] * eps, out["R"], out["b_next"], E[s1], out


def euler_errors(model, rng, zeta, R_lag, b, e, theta, nodes=6, draws=4):
  """Consumption errors `[m, L]` and whether each household saves. The expectation: nodes over
  zeta, household i's own next state summed exactly, the others drawn `draws` times a node with
  their shares in the low and high states as control variates (known means; the others move
  i's income share e / mean(e) and tomorrow's aggregates, noise of 0.004 in a single draw's
  gap)."""
  m, L = b.shape
  x, w = np.polynomial.hermite_e.hermegauss(nodes)
  w = w / w.sum()
  out = model(zeta, R_lag, b, e, theta)
  c, b1, R = out["c"], out["b_next"], out["R"]
  s = np.argmin(np.abs(e[..., None] - E), -1)                            # [m, L]
  cdf = np.cumsum(P, 1)[s][..., :2]                                      # [m, L, 2]
  known = P[s].mean(1)                                                   # [m, 3]: shares' means
  idx = np.arange(L)
  values = np.zeros((nodes, draws, m, L))
  controls = np.zeros((nodes, draws, m, 2))
  rep = lambda a: np.repeat(a, L, axis=0)
  for q in range(nodes):
    zeta1 = theta[:, 3] * zeta + theta[:, 4] * x[q]
    for d in range(draws):
      s1 = (rng.uniform(size=(m, L))[..., None] > cdf).sum(-1)
      controls[q, d] = np.stack([(s1 == 0).mean(1), (s1 == 2).mean(1)], 1) - known[:, [0, 2]]
      for k in range(3):
        # Household i alone at state k: L sets per point, household i's row is the i-th.
        e1 = np.repeat(E[s1][:, None], L, axis=1)                          # [m, L, L]
        e1[:, idx, idx] = E[k]
        nxt = model(rep(zeta1), rep(R), rep(b1), e1.reshape(m * L, L), rep(theta))
        c1 = nxt["c"].reshape(m, L, L)[:, idx, idx]
        pi1 = nxt["Pi"].reshape(m, L)
        values[q, d] += P[s, k] * (np.exp(zeta1 - zeta)[:, None] * R[:, None] / pi1
                                   * (c1 / c) ** -SIGMA)
  fc = controls - controls.mean(1, keepdims=True)
  vc = values - values.mean(1, keepdims=True)
  coef = np.linalg.solve(np.einsum("qdma,qdmb->mab", fc, fc) + 1e-12 * np.eye(2),
                         np.einsum("qdma,qdml->mal", fc, vc))                # [m, 2, L]
  values = values - np.einsum("qdma,mal->qdml", controls, coef)
  expectation = np.einsum("q,qdml->ml", w, values) / draws
  gap = 1 - model.beta * expectation
  euler = np.abs(1 - (1 - gap) ** (-1 / SIGMA))
  kkt = np.where(gap > 0, np.minimum(euler, b1 / c), euler)
  return kkt, euler, b1 > 0


def main(path, n_theta, seed, only_identities=False):
  rng = np.random.default_rng(seed)
  model = Model(path)
  draws = rng.uniform(LOW, HIGH, (20 * n_theta, 5))
  inside = draws[model.in_box(draws, model.L).astype(bool)]
  theta = np.concatenate([TRUTH[None], inside[:n_theta - 1]])
  report = {"identities": identities(model, rng, np.repeat(theta, 8, 0)), "L": model.L,
            "beta": model.beta, "n_theta": len(theta)}
  if only_identities:
    print(json.dumps(report), flush=True)
    return
  chains, burn, keep = 8, 60, 4
  th = np.repeat(theta, chains, 0)
  zeta = rng.normal(0, 1, len(th)) * th[:, 4] / np.sqrt(1 - th[:, 3] ** 2)
  R_lag = np.full(len(th), math.exp(LOG_RBAR))
  b, e = households(rng, len(th), model.L)
  kkt, plain = [], []
  for t in range(burn + keep * 10):
    if t >= burn and (t - burn) % 10 == 0:
      k, p, saves = euler_errors(model, rng, zeta, R_lag, b, e, th)
      kkt.append(k[saves])
      plain.append(p[saves])
    zeta, R_lag, b, e, _ = step(model, rng, zeta, R_lag, b, e, th)
  log = lambda a: np.log10(np.concatenate(a) + 1e-12)
  report["euler_log10"] = {"mean": float(log(kkt).mean()), "p99": float(np.percentile(log(kkt), 99)),
                           "plain_mean": float(log(plain).mean()),
                           "plain_p99": float(np.percentile(log(plain), 99)),
                           "households": int(sum(len(a) for a in kkt))}
  print(json.dumps(report), flush=True)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "--identities" in sys.argv[4:])
