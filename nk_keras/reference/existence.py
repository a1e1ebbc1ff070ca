"""Where an equilibrium exists: time iteration over slices of the box, and the existence rule
held against it.

`existence_map` solves on a grid of two parameters with the others at a few settings and
returns, per grid point, whether time iteration converged and an economy statistic (for
rank_zlb the ergodic ZLB frequency). `rule_confusion` draws thetas uniformly on the box and
counts how the economy's `in_domain` rule agrees with time iteration.
"""

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure


def existence_map(economy, x, y, settings, points=21, statistic=None):
  """`x`, `y`: parameter names spanned over the box on `points` x `points` grids; `settings`:
  list of dicts name -> value for the others (the rest at the calibration). Returns a dict of
  arrays `[len(settings), points, points]`: `valid`, `in_domain`, `statistic` (NaN where none),
  plus the grids `x`, `y`."""
  ix, iy = economy.param_names.index(x), economy.param_names.index(y)
  xs = np.linspace(economy.box_low[ix], economy.box_high[ix], points)
  ys = np.linspace(economy.box_low[iy], economy.box_high[iy], points)
  thetas = []
  for setting in settings:
    base = economy.theta_from(setting).astype(np.float64)
    grid = np.tile(base, (points, points, 1))
    grid[..., ix], grid[..., iy] = xs[None, :], ys[:, None]          # rows: y, columns: x
    thetas.append(grid.reshape(-1, economy.n_params))
  theta = np.concatenate(thetas)
  reference = economy.reference(theta)
  shape = (len(settings), points, points)
  stat = np.full(len(theta), np.nan)
  if statistic is not None:
    stat = np.where(reference.valid, statistic(reference), np.nan)
  inside = economy.in_domain(tf.constant(theta, tf.float32)).numpy()
  return {"x": xs, "y": ys, "valid": reference.valid.reshape(shape),
          "in_domain": inside.reshape(shape), "statistic": stat.reshape(shape),
          "seconds": reference.seconds}


def rule_confusion(economy, n, seed=0):
  """Counts, over `n` uniform draws of the box, of the rule (`in_domain`) against time iteration:
  `{"draws", "no_equilibrium", "inside_without_equilibrium", "outside_with_equilibrium",
  "kept_share"}`."""
  theta = economy.uniform_prior().sample(n, seed=tf.constant([seed, 11], tf.int32)).numpy()
  valid = economy.reference(theta.astype(np.float64)).valid
  inside = economy.in_domain(tf.constant(theta)).numpy()
  return {"draws": n, "no_equilibrium": int((~valid).sum()),
          "inside_without_equilibrium": int((inside & ~valid).sum()),
          "outside_with_equilibrium": int((~inside & valid).sum()),
          "kept_share": float((inside & valid).sum() / max(valid.sum(), 1))}


def map_figure(result, x_label, y_label, settings_labels, statistic_label):
  """One panel per setting: the statistic as colour where an equilibrium exists, grey where time
  iteration does not converge, the rule's boundary as a black line."""
  n = len(settings_labels)
  fig = Figure(figsize=(4.2 * n + 1.0, 3.8), layout="constrained")
  axes = fig.subplots(1, n, squeeze=False).ravel()
  stat = np.ma.masked_invalid(result["statistic"])
  vmax = np.nanmax(result["statistic"]) if np.isfinite(result["statistic"]).any() else 1.0
  for i, ax in enumerate(axes):
    ax.pcolormesh(result["x"], result["y"], (~result["valid"][i]).astype(float),
                  cmap="Greys", vmin=0, vmax=2.5, shading="nearest")
    mesh = ax.pcolormesh(result["x"], result["y"], stat[i], cmap="viridis", vmin=0, vmax=vmax,
                         shading="nearest")
    ax.contour(result["x"], result["y"], result["in_domain"][i].astype(float), levels=[0.5],
               colors="k", linewidths=1.5)
    ax.set_xlabel(x_label)
    ax.set_title(settings_labels[i], fontsize=9)
  axes[0].set_ylabel(y_label)
  fig.colorbar(mesh, ax=list(axes), label=statistic_label)
  fig.suptitle("Where an equilibrium exists (grey: time iteration does not converge; black "
               "line: the domain rule's boundary)", fontsize=10)
  return fig
