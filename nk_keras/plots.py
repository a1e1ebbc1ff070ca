"""Figures of the evaluate and simulate apps, each returned as a `matplotlib.figure.Figure`.

Figures are built without pyplot: no global figure registry (nothing leaks in long sessions) and
no display backend needed, so they render on headless machines (Agg, via `save`).
Policies and states are plotted as 100 x log deviation from the steady state (percent). Paths
show one panel per state; the figures against parameters are for one-state economies.
"""

import csv
import os

import numpy as np
from matplotlib import cm
from matplotlib.figure import Figure

from nk_keras import simulation

PCT = 100.0   # model units (log deviations) -> percent
COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple")


def label(name, economy):
  """`name`'s label in `economy`'s figures (`Economy.labels`), or the name itself."""
  return economy.labels.get(name, name)


def reference_label(reference):
  """The legend entry of a reference: closed form, or time iteration."""
  from nk_keras.reference import ClosedFormReference
  if isinstance(reference, ClosedFormReference):
    return "closed form"
  return "reference (time iteration)"


def shade(ax, x, mask, color="tab:red", alpha=0.15, label=None):
  """Shades the runs of `x` `[m]` where `mask` `[m]` is True (each run from its first to its
  last point, widened by half a step so single points show); labels the first run."""
  x, mask = np.asarray(x, float), np.asarray(mask, bool)
  if not mask.any():
    return
  half = 0.5 * (x[1] - x[0]) if len(x) > 1 else 0.5
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
  for i, (start, stop) in enumerate(zip(edges[::2], edges[1::2])):
    ax.axvspan(x[start] - half, x[stop - 1] + half, color=color, alpha=alpha, lw=0,
               label=label if i == 0 else None)


def save(fig, path):
  fig.savefig(path, dpi=110, bbox_inches="tight")
  return path


def policy_vs_params(economy, policy, n_grid=41, level=-1.0):
  """One figure per policy: the policy against each parameter in turn (KMR's Figures 3 and 9).

  The swept parameter spans its box, the others sit at the calibration, and the state is
  `level` ergodic std of that theta (so the point moves with the theta that sets its scale).
  Returns {policy name: Figure}. One state only (`Economy.require_one_state`).
  """
  import tensorflow as tf
  economy.require_one_state("the policy-against-parameters figure")
  n_params = economy.n_params
  grids = np.stack([np.linspace(lo, hi, n_grid) for lo, hi in
                    zip(economy.box_low, economy.box_high)])                    # [P, G]
  theta = np.tile(economy.calibration.astype(np.float32), (n_params, n_grid, 1))  # [P, G, P]
  for i in range(n_params):
    theta[i, :, i] = grids[i]
  theta = tf.constant(theta.reshape(-1, n_params))
  state = level * economy.ergodic_std(theta)                                   # [P*G, 1]
  nn = np.asarray(simulation.batched(policy)(state, theta)).reshape(n_params, n_grid, -1)
  # The reference at every swept theta (a closed form, or time iteration solved at each);
  # NaN where it finds no equilibrium, which leaves a gap (shaded) in the dashed line.
  reference = economy.reference(theta.numpy().astype(np.float64))
  exact = reference.policies(state.numpy().astype(np.float64)[:, None])[:, 0]
  exact[~reference.valid] = np.nan
  exact = exact.reshape(n_params, n_grid, -1)
  invalid = ~reference.valid.reshape(n_params, n_grid)
  ref_label = reference_label(reference)
  figures = {}
  cols = 4
  rows = -(-n_params // cols)
  for j, name in enumerate(economy.policy_names):
    fig = Figure(figsize=(3.2 * cols, 2.7 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, param in enumerate(economy.param_names):
      ax = axes[i]
      ax.plot(grids[i], PCT * nn[i, :, j], "-", color=COLORS[0], lw=1.8, label="network")
      ax.plot(grids[i], PCT * exact[i, :, j], "--", color="k", lw=1.2, label=ref_label)
      shade(ax, grids[i], invalid[i], color="0.5", alpha=0.2, label="no equilibrium")
      ax.axvline(economy.calibration[i], color="0.6", lw=0.8, ls=":", label="calibration")
      ax.set_xlabel(label(param, economy))
      if i % cols == 0:
        ax.set_ylabel(f"{name} (%)")
      ax.grid(alpha=0.3)
    for ax in axes[n_params:]:
      ax.set_visible(False)
    handles = {}
    for ax in axes[:n_params]:   # one legend with every entry (the gaps show on some panels)
      for h, l in zip(*ax.get_legend_handles_labels()):
        handles.setdefault(l, h)
    axes[0].legend(handles.values(), handles.keys(), fontsize=8)
    fig.suptitle(f"{label(name, economy)} (% deviation) at {economy.state_names[0]} = {level:+g} "
                 "ergodic std; other parameters at the calibration")
    figures[name] = fig
  return figures


def error_histograms(report, economy, scale_text="|{name}| at 1 ergodic std"):
  """Histograms of log10 scale-normalised error (docs/models.md, "Accuracy metric"), one panel per policy and
  one line per state level, from `accuracy.evaluate`'s report. `scale_text`: what the error
  is a percentage of (`{name}` is the policy), e.g. "the reference's ergodic std of {name}"."""
  errors = report["_raw"]["errors_pct"]                                        # [L, n, n_pol]
  levels, groups = report["levels"], economy.groups("policies")   # an agent policy: one panel
  # Errors are in percent; exact zeros (a policy equal to the closed form) get the floor.
  logs = np.log10(np.maximum(errors, 1e-8))
  bins = np.linspace(np.floor(logs.min()), np.ceil(logs.max()) + 1e-9, 61)
  fig = Figure(figsize=(5.5 * len(groups), 4.0), layout="constrained")
  axes = fig.subplots(1, len(groups), squeeze=False).ravel()
  # One line per level of a one-state economy; ergodic draws of several states make one line.
  if isinstance(levels, str):
    series = [(f"{logs.shape[0]} ergodic states per theta", logs.reshape(-1, logs.shape[-1]))]
  else:
    series = [(f"state = {k:+g} std", logs[i]) for i, k in enumerate(levels)]
  # The default cycle repeats after ten colours: more levels (rank_zlb has 11) take a
  # rainbow from dark blue (lowest state) to dark red (highest).
  colors = ([f"C{i}" for i in range(len(series))] if len(series) <= 10
            else cm.turbo(np.linspace(0.05, 0.95, len(series))))
  for ax, (name, j) in zip(axes, groups):
    for (text, values), color in zip(series, colors):
      ax.hist(values[:, j].ravel(), bins=bins, histtype="step", lw=1.4, color=color, label=text)
    p95 = report["errors_pct"][name]["p95"]
    ax.axvline(np.log10(max(p95, 1e-8)), color="k", ls="--", lw=1,
               label=f"95th pct, all levels ({p95:.3g} %)")
    ax.set_xlabel(f"log10 error of {name} (% of {scale_text.format(name=name)})")
    ax.set_ylabel("theta draws")
    ax.set_title(f"{label(name, economy)}: mean {report['errors_pct'][name]['mean']:.3g} %, "
                 f"max {report['errors_pct'][name]['max']:.3g} %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f"Scale-normalised policy error over {report['n_theta']} theta draws "
               "uniform in the box")
  return fig


def households(report):
  """From an agent-set economy's report (`accuracy_extras`' raw "_households"): the savers'
  unit-free Euler errors, and the wealth distribution (CDF) of the network's ergodic simulation
  next to the continuum's own policy run on as many households and the continuum steady state."""
  raw, summary = report["_households"], report["households"]
  responses = report.get("_impulse_responses")
  fig = Figure(figsize=(16.0 if responses else 11.0, 4.0), layout="constrained")
  ax, bx, *cx = fig.subplots(1, 3 if responses else 2)
  ax.hist(raw["euler_log10"], bins=60, histtype="step", lw=1.4, color=COLORS[0])
  for stat, style in (("mean", "--"), ("p99", ":")):
    value = summary["euler_log10"][stat]
    ax.axvline(value, color="k", ls=style, lw=1, label=f"{stat} {value:.2f}")
  ax.set_xlabel("log10 |1 - c_implied / c|, households that save")
  ax.set_ylabel("households x states")
  ax.legend(fontsize=8)
  for (text, b), color in zip((("network", raw["wealth"]),
                               ("continuum policy, same households", raw["wealth_guess"])),
                              COLORS):
    b = np.sort(b)
    bx.plot(b, np.arange(1, len(b) + 1) / len(b), color=color, lw=1.4, label=text)
  grid, mass = raw["continuum"]
  bx.plot(grid, np.cumsum(mass), color="k", ls="--", lw=1, label="continuum steady state")
  bx.set_xscale("symlog", linthresh=0.25)
  bx.set_xlabel("bonds held (quarterly output)")
  bx.set_ylabel("share of households holding less")
  bx.legend(fontsize=8)
  if responses:
    cx = cx[0]
    for (name, paths), color in zip(responses.items(), COLORS):
      cx.plot(100 * paths["continuum"], color=color, ls="--", lw=1, label=f"{name}, continuum")
      cx.plot(100 * paths["network"], color=color, lw=1.4,
              label=f"{name}, network (L = {report['impulse_responses']['L']})")
    cx.axhline(0.0, color="k", lw=0.5)
    cx.set_xlabel("quarters after a preference innovation")
    cx.set_ylabel("100 x log deviation, per std of the innovation")
    cx.legend(fontsize=8)
  fig.suptitle("Households along ergodic simulations (at the calibration for wealth)"
               + (", and small-shock responses" if responses else ""))
  return fig


def read_history(path):
  """`history.csv` of a training run as {column: float array}; None if absent or unreadable."""
  if not os.path.isfile(path):
    return None
  try:
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
    if not rows:
      return None
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
  except (OSError, ValueError, TypeError):
    return None


def loss_curve(history):
  """Training loss and per-equation mean squared residuals on a log scale; lr on a twin axis."""
  fig = Figure(figsize=(7.5, 4.2), layout="constrained")
  ax = fig.subplots()
  if "step" in history:
    x, xlabel = history["step"], "gradient step"
  else:
    x = np.arange(1, len(history["loss"]) + 1)
    xlabel = "history row (one per --log_every gradient steps)"
  ax.semilogy(x, history["loss"], color="k", lw=1.8, label="loss")
  for c, name in zip(COLORS, [k for k in history if k.startswith("mse_")]):
    ax.semilogy(x, history[name], color=c, lw=1.2, label=name)
  ax.set_xlabel(xlabel)
  ax.set_ylabel("loss / mean squared error term (log scale)")
  ax.grid(alpha=0.3, which="both")
  handles, labels = ax.get_legend_handles_labels()
  if "lr" in history:
    ax2 = ax.twinx()
    ax2.semilogy(x, history["lr"], color="0.5", ls=":", lw=1.2, label="learning rate")
    ax2.set_ylabel("learning rate (log scale)")
    h2, l2 = ax2.get_legend_handles_labels()
    handles, labels = handles + h2, labels + l2
  ax.legend(handles, labels, fontsize=8, loc="upper right")
  ax.set_title("Training history")
  return fig


def _paths(table, economy, title, xlabel, marker=None):
  key, ref_label = (("exact", "closed form") if f"{economy.policy_names[0]}_exact" in table
                    else ("reference", "reference (time iteration)"))
  k = economy.n_state
  names = list(economy.state_names) + list(economy.policy_names)
  fig = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
  axes = fig.subplots(1, len(names), squeeze=False).ravel()
  t = table["period"]
  for ax, name in zip(axes[:k], economy.state_names):
    ax.plot(t, PCT * table[name], color="k", lw=1.4, marker=marker, ms=3)
    ax.set_title(label(name, economy))
  axes[0].set_ylabel("% deviation from steady state")
  for ax, name in zip(axes[k:], economy.policy_names):
    ax.plot(t, PCT * table[f"{name}_nn"], "-", color=COLORS[0], lw=1.8, label="network")
    if f"{name}_{key}" in table:
      ax.plot(t, PCT * table[f"{name}_{key}"], "--", color="k", lw=1.2, label=ref_label)
    ax.set_title(label(name, economy))
    ax.legend(fontsize=8)
  for ax in axes[k:]:
    ax.set_ylabel("%")
  for ax in axes:
    ax.set_xlabel(xlabel)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.grid(alpha=0.3)
  fig.suptitle(title)
  return fig


def time_series(table, economy, title="Simulated path"):
  """State and policies along one simulated path, network (solid) vs closed form (dashed)."""
  return _paths(table, economy, title, "period")


def impulse_response(table, economy, title="Impulse response"):
  """Responses to one innovation std, network (solid) vs closed form (dashed)."""
  return _paths(table, economy, title, "periods after the shock", marker="o")
