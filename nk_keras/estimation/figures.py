"""Figures of the estimation app (matplotlib `Figure`s, no pyplot; see `nk_keras.plots`)."""

import numpy as np
from matplotlib.figure import Figure

from nk_keras.plots import label

SOURCES = {"surrogate": ("tab:blue", "-"), "particle filter": ("tab:orange", "."),
           "Kalman": ("black", "--"), "particle filter, exact policy": ("black", "x")}


def _grid(n):
  cols = min(4, n)
  return -(-n // cols), cols


def likelihood_slices(economy, names, grids, curves, center, title):
  """One panel per parameter: log-likelihood along its box with the others at `center`
  (KMR's Figures 5 and 10). `grids` `[k, G]`; `curves` {source: `[k, G]`}; `center` `[k]`."""
  rows, cols = _grid(len(names))
  fig = Figure(figsize=(3.3 * cols, 2.7 * rows + 0.6), layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for i, name in enumerate(names):
    ax = axes[i]
    for source, values in curves.items():
      color, style = SOURCES.get(source, ("tab:green", "-"))
      if style in (".", "x"):
        ax.plot(grids[i], values[i], style, color=color, ms=4, label=source)
      else:
        ax.plot(grids[i], values[i], style, color=color, lw=1.4, label=source)
    ax.axvline(center[i], color="grey", lw=0.8, ls=":")
    ax.set_xlabel(label(name, economy), fontsize=8)
    ax.tick_params(labelsize=7)
    # The interesting part is near the maximum; far values (thousands below) would flatten it.
    top = max(np.nanmax(v[i]) for v in curves.values())
    ax.set_ylim(top - 60, top + 5)
  for ax in axes[len(names):]:
    ax.set_visible(False)
  axes[0].set_ylabel("log-likelihood", fontsize=8)
  axes[0].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  return fig


def posterior_densities(economy, names, samples, box, prior, truth=None,
                        title="Posterior densities"):
  """Histograms of the pooled draws per parameter, one colour per posterior, and the prior's
  marginal density. `samples` {name: `[n, chains, k]`}; `box` `[k, 2]`; `prior` per parameter
  `(grid [m], density [m])`; `truth` `[k]` or None."""
  rows, cols = _grid(len(names))
  fig = Figure(figsize=(3.3 * cols, 2.6 * rows + 0.6), layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  colors = ("tab:blue", "black", "tab:green")
  for i, name in enumerate(names):
    ax = axes[i]
    # Over where the draws are, not the whole box: a posterior much narrower than the prior
    # (rank_zlb's) would fill one bin of the box.
    draws_i = np.concatenate([d[..., i].ravel() for d in samples.values()])
    lo, hi = np.quantile(draws_i, [0.0005, 0.9995])
    lo, hi = max(box[i][0], lo - 0.2 * (hi - lo)), min(box[i][1], hi + 0.2 * (hi - lo))
    bins = np.linspace(lo, hi, 41)
    for (source, draws), color in zip(samples.items(), colors):
      ax.hist(draws[..., i].ravel(), bins=bins, density=True, histtype="step", color=color,
              lw=1.4, label=source)
    grid, density = prior[i]
    shown = (grid >= lo) & (grid <= hi)
    ax.plot(grid[shown], density[shown], color="grey", lw=0.8, ls=":", label="prior")
    if truth is not None:
      ax.axvline(truth[i], color="tab:red", lw=1.0, label="true")
    ax.set_xlabel(label(name, economy), fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in axes[len(names):]:
    ax.set_visible(False)
  axes[0].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  return fig


def traces(economy, names, samples, title="Trace plots", max_points=2000):
  """Chains against iteration, per parameter, `samples` `[n, chains, k]` (thinned to plot)."""
  n, chains, k = samples.shape
  thin = max(1, n // max_points)
  rows, cols = _grid(k)
  fig = Figure(figsize=(3.3 * cols, 2.3 * rows + 0.6), layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  steps = np.arange(0, n, thin)
  for i, name in enumerate(names):
    for c in range(chains):
      axes[i].plot(steps, samples[::thin, c, i], lw=0.5, alpha=0.7)
    axes[i].set_title(label(name, economy), fontsize=8)
    axes[i].tick_params(labelsize=7)
  for ax in axes[k:]:
    ax.set_visible(False)
  fig.suptitle(title, fontsize=10)
  return fig


def pf_convergence(rows_by_policy, title):
  """Bias and std of the PF log-likelihood against particles, the bias measured from the
  reference (Kalman's, or the exact-policy filter's at many particles; `title` says which),
  one line per policy."""
  fig = Figure(figsize=(9, 3.4), layout="constrained")
  ax1, ax2 = fig.subplots(1, 2)
  for name, rows in rows_by_policy.items():
    n = [r["particles"] for r in rows]
    ax1.errorbar(n, [r["bias"] for r in rows], yerr=[2 * r["bias_stderr"] for r in rows],
                 marker="o", capsize=3, label=name)
    ax2.loglog(n, [r["std"] for r in rows], marker="o", label=name)
  ax1.axhline(0, color="grey", lw=0.8)
  ax1.set_xscale("log")
  ax1.set_xlabel("particles")
  ax1.set_ylabel("mean of PF - reference (±2 se)")
  ax2.set_xlabel("particles")
  ax2.set_ylabel("std of PF log-likelihood")
  ax1.legend(fontsize=8)
  fig.suptitle(title, fontsize=10)
  return fig
