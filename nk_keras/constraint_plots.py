"""Figures for an economy with an occasionally binding constraint (`Economy.constraint`, e.g.
rank_zlb's ZLB): network (solid) vs reference (dashed), where the constraint binds shaded.
Values are shown in the economy's figure units (`Economy.display`)."""

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from nk_keras import constraint, simulation
from nk_keras.plots import COLORS, label, shade


def describe(economy, theta):
  """Short text of a theta: the parameters away from the calibration, or "calibration"."""
  diff = [f"{n}={v:g}" for n, v, c in zip(economy.param_names, theta, economy.calibration)
          if not np.isclose(v, c)]
  return ", ".join(diff) or "calibration"


def policies_vs_state(economy, policy, thetas=None, span=3.0, points=301):
  """Rows: thetas (default: the calibration and the economy's `showcase`); columns: each value
  (`simulation.value_names`) against the first state in ergodic std (-span..span; the other
  states at the steady state), network vs reference, the reference's binding region shaded.
  Thetas where the reference finds no equilibrium show the network alone."""
  if thetas is None:
    thetas = [economy.calibration] + [economy.theta_from(v) for v in economy.showcase]
  thetas = np.asarray(thetas, np.float64)
  reference = economy.reference(thetas)
  frequency = constraint.frequency(reference)
  k = np.linspace(-span, span, points)
  theta_t = tf.constant(thetas, tf.float32)
  centre = simulation.steady_state(economy, theta_t).numpy().astype(np.float64)  # [n, S]
  std = economy.ergodic_std(theta_t).numpy().astype(np.float64)[:, 0]           # [n]
  states = np.repeat(centre[:, None, :], points, axis=1)                         # [n, points, S]
  states[:, :, 0] += k[None] * std[:, None]
  # Row i of the reference belongs to theta i: every row is asked at its own states.
  ref_all = reference.policies(states)
  names = simulation.value_names(economy)
  first = economy.state_names[0]
  fig = Figure(figsize=(4 * len(names), 2.8 * len(thetas) + 0.6), layout="constrained")
  rows = np.atleast_1d(fig.subfigures(len(thetas), 1))
  for i, theta in enumerate(thetas):
    nn_policies = simulation.evaluate(policy, states[i], theta)
    nn = simulation.values(economy, theta, states[i], nn_policies)
    ref = simulation.values(economy, theta, states[i], ref_all[i])
    axes = rows[i].subplots(1, len(names))
    for ax, name in zip(axes, names):
      ax.plot(k, economy.display(name, nn[name]), color=COLORS[0], lw=1.8, label="network")
      if reference.valid[i]:
        ax.plot(k, economy.display(name, ref[name]), "--", color="k", lw=1.2,
                label="reference (time iteration)")
        shade(ax, k, constraint.binds(constraint.slack(economy, theta, states[i], ref_all[i])),
              label=f"{economy.constraint} binds (reference)")
      ax.set_title(label(name, economy), fontsize=9)
      ax.set_ylabel(economy.display_unit(name))
      ax.set_xlabel(f"{label(first, economy)} (ergodic std)")
      ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    status = (f"the {economy.constraint} binds {100 * frequency[i]:.1f} % of the time "
              "(reference)" if reference.valid[i] else
              "no equilibrium (reference): network only")
    rows[i].suptitle(f"{describe(economy, theta)}: {status}", fontsize=10)
  fig.suptitle("Policies against the state: network (solid) vs time iteration (dashed)",
               fontsize=11)
  return fig


PATH_COLUMNS = 6


def path(table, economy, title, theta):
  """One simulated path: the states, then each value, network vs reference; periods where
  the constraint binds under the reference shaded."""
  t = table["period"]
  source = "reference" if f"{economy.constraint}_slack_reference" in table else "nn"
  binding = constraint.binds(table[f"{economy.constraint}_slack_{source}"])
  names = simulation.value_names(economy)
  states = list(economy.state_names[:economy.n_aggregate_states])
  # An agent set's state as its distribution over time: one panel of quantiles across agents.
  agents = list(economy.agent_states)
  # At most PATH_COLUMNS panels a row: an agent set's economy has a dozen (a HANK's figure was
  # 5,000 pixels wide).
  n = len(states) + len(agents) + len(names)
  rows, cols = -(-n // PATH_COLUMNS), min(n, PATH_COLUMNS)
  fig = Figure(figsize=(3.8 * cols, 3.0 * rows + 0.4), layout="constrained")
  grid = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax in grid[n:]:
    ax.set_visible(False)
  axes = grid[:n]
  for ax, name in zip(axes, states):
    ax.plot(t, 100 * table[name], color="k", lw=1.2)
    ax.set_title(label(name, economy))
    ax.set_ylabel(f"100 x {name}")
  for ax, name in zip(axes[len(states):], agents):
    for q, style in (("p90", "--"), ("p50", "-"), ("p10", ":")):
      ax.plot(t, table[f"{name}_{q}"], style, color="k", lw=1.1, label=f"{q} across agents")
    ax.set_title(label(name, economy))
    ax.set_ylabel(name)
    ax.legend(fontsize=7)
  values = axes[len(states) + len(agents):]
  for ax, name in zip(values, names):
    ax.plot(t, economy.display(name, table[f"{name}_nn"]), color=COLORS[0], lw=1.5,
            label="network")
    if f"{name}_reference" in table:
      ax.plot(t, economy.display(name, table[f"{name}_reference"]), "--", color="k", lw=1.1,
              label="reference")
    ax.set_title(label(name, economy))
    ax.set_ylabel(economy.display_unit(name))
  for ax in axes:
    shade(ax, t, binding, label=f"{economy.constraint} ({'network' if source == 'nn' else source})")
    ax.set_xlabel("period")
    ax.grid(alpha=0.3)
  fig.legend(*values[0].get_legend_handles_labels(), loc="outside lower center",
             ncols=3, fontsize=9)
  fig.suptitle(title)
  return fig


def girfs(tables, economy, title):
  """Generalised impulse responses, one row per shock size (`tables`: innovation in std ->
  `constraint.girf` table): the first state, each value (differences, figure units) and the
  share of paths where the constraint binds. Rows after the first also show the first row's
  reference response scaled linearly to their shock (dotted): the gap is the nonlinearity."""
  names = simulation.value_names(economy)
  first_state = economy.state_names[0]
  fig = Figure(figsize=(3.3 * (len(names) + 2), 3.0 * len(tables) + 0.8), layout="constrained")
  axes = fig.subplots(len(tables), len(names) + 2, squeeze=False)
  first_shock, first = next(iter(tables.items()))
  for row, (shock, table) in zip(axes, tables.items()):
    t = table["period"]
    row[0].plot(t, 100 * table[first_state], "o-", color="k", lw=1.2, ms=2.5)
    row[0].set_title(f"{shock:+g} std innovation: {first_state}", fontsize=9)
    row[0].set_ylabel("difference (x 100)")
    for ax, name in zip(row[1:-1], names):
      d = lambda v: economy.display(name, v, difference=True)
      ax.set_title(label(name, economy), fontsize=9)
      ax.set_ylabel(f"difference in {economy.display_unit(name)}", fontsize=8)
      ax.plot(t, d(table[f"{name}_nn"]), "-", color=COLORS[0], lw=1.6, label="network")
      if f"{name}_{economy.counterpart}" in table:
        ax.plot(t, d(table[f"{name}_{economy.counterpart}"]), "-.", color=COLORS[1], lw=1.4,
                label=f"{economy.counterpart} (reference)")
      if f"{name}_reference" not in table:
        continue
      ax.plot(t, d(table[f"{name}_reference"]), "--", color="k", lw=1.2, label="reference")
      if shock != first_shock:
        ax.plot(t, d(first[f"{name}_reference"]) * shock / first_shock, ":", color="tab:red",
                lw=1.4, label=f"reference to {first_shock:+g} std x {shock / first_shock:g}")
    for kind, style, color, text in (
        ("nn", "-", COLORS[0], "network, shocked"), ("reference", "--", "k", "reference, shocked"),
        (economy.counterpart, "-.", COLORS[1], f"{economy.counterpart}, shocked")):
      if f"bind_share_{kind}" in table:
        row[-1].plot(t, 100 * table[f"bind_share_{kind}"], style, color=color, lw=1.4,
                     label=text)
    kind = "reference" if "bind_share_baseline_reference" in table else "nn"
    row[-1].plot(t, 100 * table[f"bind_share_baseline_{kind}"], ":", color="0.5", lw=1.2,
                 label=f"{'network' if kind == 'nn' else kind}, no shock")
    row[-1].set_title(f"share of paths at the {economy.constraint} (%)", fontsize=9)
    row[-1].legend(fontsize=7)
    row[1].legend(fontsize=7, loc="lower right")
    for ax in row:
      ax.axhline(0, color="0.7", lw=0.8)
      ax.grid(alpha=0.3)
      ax.set_xlabel("periods after the shock")
  fig.suptitle(title, fontsize=10)
  return fig
