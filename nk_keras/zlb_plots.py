"""Figures for an economy with a zero lower bound (rank_zlb): network (solid) vs reference (dashed),
the ZLB region shaded. Units: 100 log N (%), annualised inflation and rate (400 log, %)."""

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from nk_keras import simulation, zlb
from nk_keras.plots import COLORS, label, shade

VALUES = (("N", "100 log N (%)"), ("Pi", "annualised inflation (%)"),
          ("R", "annualised policy rate (%)"))
# The thetas of the policy figure besides the calibration: inside the box and where time
# iteration finds an equilibrium, with ZLB frequencies from ~2 % to ~20 %.
SHOWCASE = ({"theta_pi": 1.6, "theta_y": 0.1}, {"sigma_zeta": 0.025, "rho_zeta": 0.6},
            {"rho_zeta": 0.8, "sigma_zeta": 0.015})


def describe(economy, theta):
  """Short text of a theta: the parameters away from the calibration, or "calibration"."""
  diff = [f"{n}={v:g}" for n, v, c in zip(economy.param_names, theta, economy.calibration)
          if not np.isclose(v, c)]
  return ", ".join(diff) or "calibration"


def policies_vs_state(economy, policy, thetas=None, span=3.0, points=301):
  """Rows: thetas (default: the calibration and `SHOWCASE`); columns: N, inflation and the rate
  against zeta in ergodic std (-span..span), network vs reference, reference ZLB region shaded.
  Thetas where the reference finds no equilibrium show the network alone."""
  from nk_keras.economies import rank_zlb
  if thetas is None:
    thetas = [economy.calibration] + [economy.theta_from(v) for v in SHOWCASE]
  thetas = np.asarray(thetas, np.float64)
  reference = economy.reference(thetas)
  frequency = rank_zlb.zlb_frequency(reference)
  k = np.linspace(-span, span, points)
  # Row i of the reference belongs to theta i: every row is asked at its own k ergodic std.
  ref_all = reference.policies_z(np.broadcast_to(k, (len(thetas), points)))
  fig = Figure(figsize=(12, 2.8 * len(thetas) + 0.6), layout="constrained")
  rows = np.atleast_1d(fig.subfigures(len(thetas), 1))
  for i, theta in enumerate(thetas):
    zeta = (k * reference.std[i])[:, None]                                  # [points, 1]
    nn = simulation.values(economy, theta, zeta, simulation.evaluate(policy, zeta, theta))
    ref = simulation.values(economy, theta, zeta, ref_all[i])
    axes = rows[i].subplots(1, 3)
    for ax, (name, unit) in zip(axes, VALUES):
      ax.plot(k, zlb.display(economy, name, nn[name]), color=COLORS[0], lw=1.8, label="network")
      if reference.valid[i]:
        ax.plot(k, zlb.display(economy, name, ref[name]), "--", color="k", lw=1.2,
                label="reference (time iteration)")
        shade(ax, k, zlb.binds(ref["R"]), label="ZLB binds (reference)")
      ax.set_title(label(name, economy), fontsize=9)
      ax.set_ylabel(unit)
      ax.set_xlabel("ζ, preference shock (ergodic std)")
      ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    status = (f"the ZLB binds {100 * frequency[i]:.1f} % of the time (reference)"
              if reference.valid[i] else "no equilibrium (reference): network only")
    rows[i].suptitle(f"{describe(economy, theta)}: {status}", fontsize=10)
  fig.suptitle("Policies against the shock: network (solid) vs time iteration (dashed)",
               fontsize=11)
  return fig


def path(table, economy, title):
  """One simulated path: zeta, N, inflation and the rate, network vs reference; periods where
  the reference is at the ZLB shaded."""
  t = table["period"]
  at_zlb = zlb.binds(table["R_reference"])
  fig = Figure(figsize=(15, 3.4), layout="constrained")
  axes = fig.subplots(1, 4)
  axes[0].plot(t, 100 * table["zeta"], color="k", lw=1.2)
  axes[0].set_title(label("zeta", economy))
  axes[0].set_ylabel("100 ζ")
  for ax, (name, unit) in zip(axes[1:], VALUES):
    ax.plot(t, zlb.display(economy, name, table[f"{name}_nn"]), color=COLORS[0], lw=1.5,
            label="network")
    ax.plot(t, zlb.display(economy, name, table[f"{name}_reference"]), "--", color="k", lw=1.1,
            label="reference")
    ax.set_title(label(name, economy))
    ax.set_ylabel(unit)
  for ax in axes:
    shade(ax, t, at_zlb, label="ZLB (reference)")
    ax.set_xlabel("period")
    ax.grid(alpha=0.3)
  fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncols=3,
             fontsize=9)
  fig.suptitle(title)
  return fig


def girfs(tables, economy, title):
  """Generalised impulse responses, one row per shock (`tables`: innovation in std ->
  `zlb.girf` table): zeta, N, inflation, the rate (differences, figure units) and the share of
  paths at the ZLB. Rows after the first also show the first row's reference response scaled
  linearly to their shock (dotted): the gap is the ZLB's nonlinearity."""
  fig = Figure(figsize=(16, 3.0 * len(tables) + 0.8), layout="constrained")
  axes = fig.subplots(len(tables), 5, squeeze=False)
  first_shock, first = next(iter(tables.items()))
  for row, (shock, table) in zip(axes, tables.items()):
    t = table["period"]
    row[0].plot(t, 100 * table["zeta"], "o-", color="k", lw=1.2, ms=2.5)
    row[0].set_title(f"{shock:+g} std innovation: ζ", fontsize=9)
    row[0].set_ylabel("difference (x 100)")
    for ax, (name, unit) in zip(row[1:4], VALUES):
      d = lambda v: zlb.display(economy, name, v, difference=True)
      ax.plot(t, d(table[f"{name}_nn"]), "-", color=COLORS[0], lw=1.6, label="network")
      ax.plot(t, d(table[f"{name}_reference"]), "--", color="k", lw=1.2, label="reference")
      if shock != first_shock:
        ax.plot(t, d(first[f"{name}_reference"]) * shock / first_shock, ":", color="tab:red",
                lw=1.4, label=f"reference to {first_shock:+g} std x {shock / first_shock:g}")
      ax.set_title(label(name, economy) + ("" if name == "N" else " (annualised)"), fontsize=9)
      ax.set_ylabel("difference (%)" if name == "N" else "difference (pp)")
    for kind, style, color, text in (("nn", "-", COLORS[0], "network, shocked"),
                                     ("reference", "--", "k", "reference, shocked")):
      row[4].plot(t, 100 * table[f"zlb_share_{kind}"], style, color=color, lw=1.4, label=text)
    row[4].plot(t, 100 * table["zlb_share_baseline_reference"], ":", color="0.5", lw=1.2,
                label="reference, no shock")
    row[4].set_title("share of paths at the ZLB (%)", fontsize=9)
    row[4].legend(fontsize=7)
    row[1].legend(fontsize=7, loc="lower right")
    for ax in row:
      ax.axhline(0, color="0.7", lw=0.8)
      ax.grid(alpha=0.3)
      ax.set_xlabel("periods after the shock")
  fig.suptitle(title, fontsize=10)
  return fig
