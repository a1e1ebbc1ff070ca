"""Which parameters drive non-convergence, and a conservative existence rule.

  python docs/existence/analyse_labels.py docs/existence/existence_labels.csv \
      [--validate docs/existence/existence_labels_seed1.csv]
  python docs/existence/analyse_labels.py docs/existence/inertia_labels.csv \
      --economy=rank_zlb_inertia --out=docs/existence/inertia_rule.csv

rank_zlb's names and box come from the independent NumPy solver (`tests/zlb_reference.py`);
another economy's from nk_keras (its labels from `docs/existence/inertia_labels.py`).

Tables by quintile, a linear logistic fit, and the rule: a quadratic inequality in the normalised
parameters u = (theta - lower) / (upper - lower) - 1/2 (so u in [-1/2, 1/2]^5),
    score(u) = c0 + sum_i c_i u_i + sum_{i<=j} c_ij u_i u_j < 0   (inside: an equilibrium exists),
fitted by class-weighted logistic regression (non-converged draws weighted 10x; the draws that
only ran out of iterations count as non-converged) and then shifted so that no non-converged
training draw is inside, plus a margin. Coefficients are rounded to 3 decimals before counting.
"""

import argparse
import sys

import numpy as np



class Box:
  """The parameters' names, box, true values and the labels' iteration cap."""

  def __init__(self, economy):
    if economy == "rank_zlb":
      sys.path.insert(0, "tests")
      import zlb_reference as zr
      self.names, self.lower, self.upper = zr.NAMES, zr.LOWER, zr.UPPER
      self.true, self.max_iter = zr.TRUE, zr.MAX_ITER
    else:
      from nk_keras import economies
      e = economies.get(economy)
      self.names, self.lower, self.upper = e.param_names, e.box_low, e.box_high
      self.true, self.max_iter = e.calibration, MAX_ITER
    k = len(self.names)
    self.pairs = [(i, j) for i in range(k) for j in range(i, k)]


MAX_ITER = 3000   # time_iteration_nd.solve_block's


def load(path, box):
  d = np.genfromtxt(path, delimiter=",", names=True)
  theta = np.column_stack([d[k] for k in box.names])
  return theta, d["converged"] == 0, d


def normalised(theta, box):
  return (theta - box.lower) / (box.upper - box.lower) - 0.5


def features(u, box):
  return np.column_stack([np.ones(len(u)), u] + [u[:, i] * u[:, j] for i, j in box.pairs])


def logistic(X, y, weight, ridge, iters=60):
  w = np.zeros(X.shape[1])
  for _ in range(iters):
    p = 1 / (1 + np.exp(-np.clip(X @ w, -50, 50)))
    s = weight * p * (1 - p)
    w += np.linalg.solve(X.T @ (X * s[:, None]) + ridge * np.eye(len(w)),
                         X.T @ (weight * (y - p)) - ridge * w)
  return w


def confusion(score, bad):
  inside = score < 0
  return int(np.sum(inside & bad)), int(np.sum(~inside & ~bad)), int(np.sum(inside & ~bad))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("labels")
  p.add_argument("--validate")
  p.add_argument("--economy", default="rank_zlb")
  p.add_argument("--out", default="docs/existence/existence_rule.csv")
  p.add_argument("--margin", type=float, default=0.01,
                 help="score margin (coefficients scaled to a largest |c| of 1)")
  a = p.parse_args()
  box = Box(a.economy)
  theta, bad, d = load(a.labels, box)
  u = normalised(theta, box)
  n = len(bad)
  print(f"{n} draws, {bad.sum()} not converged ({100 * bad.mean():.1f} %): "
        f"{np.sum(bad & (d['iterations'] < box.max_iter))} ran away, "
        f"{np.sum(bad & (d['iterations'] >= box.max_iter))} hit max_iter {box.max_iter}")
  it = d["iterations"][~bad]
  print("iterations of converged draws: median %d, 99th pct %d, max %d"
        % (np.median(it), np.percentile(it, 99), it.max()))
  print("\nfraction not converged by quintile of each parameter (low -> high)")
  for j, name in enumerate(box.names):
    q = np.minimum(((u[:, j] + 0.5) * 5).astype(int), 4)
    print(f"  {name:11s}", " ".join(f"{bad[q == k].mean():5.2f}" for k in range(5)))
  lin = logistic(np.column_stack([np.ones(n), u]), bad.astype(float), np.ones(n), 1e-6)
  print("\nlinear logistic fit, P(not converged) on u:  const %.2f  " % lin[0]
        + "  ".join(f"{k} {v:.2f}" for k, v in zip(box.names, lin[1:])))

  X = features(u, box)
  w = logistic(X, bad.astype(float), np.where(bad, 10.0, 1.0), ridge=1e-2)
  w = np.round(w / np.abs(w[1:]).max(), 3)           # scale: largest coefficient 1; rounded
  rest = X[:, 1:] @ w[1:]
  # Constant: no non-converged training draw inside, plus a margin (rounded up).
  w[0] = np.ceil(1e3 * (a.margin - rest[bad].min())) / 1e3
  names = ["1"] + [f"u_{k}" for k in box.names] + [f"u_{box.names[i]}*u_{box.names[j]}"
                                                   for i, j in box.pairs]
  print(f"\nexistence rule: score(u) < 0 with score = ")
  for c, nm in zip(w, names):
    print(f"   {c:+.3f} {nm}")
  fi, fo, ti = confusion(X @ w, bad)
  print(f"training ({n} draws): false inside {fi} of {bad.sum()} non-converged, false outside "
        f"{fo} of {(~bad).sum()} converged (keeps {ti}, {100 * ti / (~bad).sum():.1f} %)")
  tr = box.true[None]
  print(f"score at the true theta: {(features(normalised(tr, box), box) @ w)[0]:.3f}")
  if a.validate:
    vt, vb, _ = load(a.validate, box)
    fi, fo, ti = confusion(features(normalised(vt, box), box) @ w, vb)
    print(f"validation ({len(vb)} fresh draws, {vb.sum()} not converged): false inside {fi}, "
          f"false outside {fo} of {(~vb).sum()} converged (keeps {100 * ti / (~vb).sum():.1f} %)")
  np.savetxt(a.out, w[None], delimiter=",", fmt="%.3f",
             header=",".join(names), comments="")


if __name__ == "__main__":
  main()
