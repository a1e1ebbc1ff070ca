"""Which parameters drive non-convergence? Tables, a logistic fit and candidate existence rules.

  python docs/rank_zlb/analyse_labels.py docs/rank_zlb/existence_labels.csv
"""

import sys

import numpy as np

sys.path.insert(0, "tests")
import zlb_reference as zr  # noqa: E402

d = np.genfromtxt(sys.argv[1], delimiter=",", names=True)
theta = np.column_stack([d[k] for k in zr.NAMES])
u = (theta - zr.LOWER) / (zr.UPPER - zr.LOWER)           # normalised to [0, 1]
bad = d["converged"] == 0
n = len(bad)
print(f"{n} draws, {bad.sum()} not converged ({100 * bad.mean():.1f} %); "
      f"of those {np.sum(bad & (d['iterations'] >= zr.MAX_ITER))} hit max_iter")
it = d["iterations"][~bad]
print("iterations of converged draws: median %d, 99th pct %d, max %d"
      % (np.median(it), np.percentile(it, 99), it.max()))

print("\nfraction not converged by quintile of each normalised parameter")
for j, name in enumerate(zr.NAMES):
  q = np.minimum((u[:, j] * 5).astype(int), 4)
  print(f"  {name:11s}", " ".join(f"{bad[q == k].mean():5.2f}" for k in range(5)))


def logistic(x, y, iters=50, ridge=1e-6):
  X = np.column_stack([np.ones(len(x)), x])
  w = np.zeros(X.shape[1])
  for _ in range(iters):
    p = 1 / (1 + np.exp(-X @ w))
    g = X.T @ (y - p) - ridge * w
    H = X.T @ (X * (p * (1 - p))[:, None]) + ridge * np.eye(len(w))
    w = w + np.linalg.solve(H, g)
  return w


w = logistic(u - 0.5, bad.astype(float))
print("\nlogistic fit of P(not converged) on centred normalised parameters:")
print("  const %.2f  " % w[0] + "  ".join(f"{k} {v:.2f}" for k, v in zip(zr.NAMES, w[1:])))

# Derived quantities.
se = zr.sigma_erg(theta)
a, b = zr.linearised(theta)
# Linearised ZLB probability: log notional rate = log Rbar + (theta_pi b + theta_y a) zeta.
s_r = (theta[:, 0] * b + theta[:, 1] * a) * se
lin_zlb = 0.5 * (1 + np.vectorize(np.math.erf if hasattr(np, "math") else __import__("math").erf)(
    -zr.LOG_RBAR / s_r / np.sqrt(2)))
for name, q in (("sigma_erg", se), ("linearised ZLB prob", lin_zlb)):
  order = np.argsort(q)
  first_bad = q[order][np.argmax(bad[order])]
  keep = q < first_bad
  print(f"\nrule {name} < {first_bad:.5g} (smallest value among non-converged): keeps "
        f"{keep.sum()} of {(~bad).sum()} converged ({100 * keep.sum() / (~bad).sum():.1f} %)")
  for qq in np.percentile(q[bad], [0, 1, 5]):
    inside = q < qq
    print(f"   threshold {qq:.5g}: false inside {np.sum(inside & bad)}, "
          f"false outside {np.sum(~inside & ~bad)}")
np.save("/tmp/zlb_derived.npy", np.column_stack([se, lin_zlb, s_r]))
