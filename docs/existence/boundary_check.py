"""Are the existence labels robust? Re-solve the 100 draws nearest the fitted boundary with a finer
grid, more nodes and more iterations, and compare labels.

  python docs/existence/boundary_check.py docs/existence/existence_labels.csv
"""

import math
import sys
import time

import numpy as np

sys.path.insert(0, "tests")
import zlb_reference as zr  # noqa: E402

d = np.genfromtxt(sys.argv[1], delimiter=",", names=True)
theta = np.column_stack([d[k] for k in zr.NAMES])
bad = d["converged"] == 0
u = (theta - zr.LOWER) / (zr.UPPER - zr.LOWER) - 0.5
X = np.column_stack([np.ones(len(u)), u, u ** 2, u[:, 3] * u[:, 4]])
w = np.zeros(X.shape[1])
for _ in range(30):                        # ridge-regularised logistic regression (Newton)
  p = 1 / (1 + np.exp(-X @ w))
  w += np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]) + 1e-3 * np.eye(len(w)),
                       X.T @ (bad - p) - 1e-3 * w)
p = 1 / (1 + np.exp(-X @ w))
pick = np.argsort(np.abs(p - 0.5))[:100]
print(f"100 boundary draws: fitted P(fail) {p[pick].min():.2f}-{p[pick].max():.2f}, "
      f"{bad[pick].sum()} labelled not converged")
for kw in (dict(n_grid=801, n_nodes=96, max_iter=6000), dict(n_grid=201, span=7.0, max_iter=6000)):
  t = time.time()
  sol = zr.solve(theta[pick], **kw)
  same = sol.converged == ~bad[pick]
  print(f"{kw}: {same.sum()} of 100 labels agree ({time.time() - t:.0f} s)")
  for i in np.flatnonzero(~same):
    j = pick[i]
    print("   differs:", np.round(theta[j], 4), "labels: default", not bad[j], "iters",
          int(d["iterations"][j]), "-> refined", sol.converged[i], "iters", sol.iterations[i])
