"""Figure of the reference app: a rank_zlb reference policy against the state."""

import numpy as np
from matplotlib.figure import Figure


def policy_figure(zeta, table, zlb, title):
  """N, annualised inflation and the annualised rate (percent) against `zeta` `[m]`, with the
  ZLB region (`zlb` `[m]` bool) shaded. `table`: dict with levels "N", "Pi", "R" `[m]`."""
  panels = (("N", "N, hours (level)", lambda v: v),
            ("Pi", "Π, inflation (annualised %)", lambda v: 400 * np.log(v)),
            ("R", "R, policy rate (annualised %)", lambda v: 400 * np.log(v)))
  fig = Figure(figsize=(11, 3.4), layout="constrained")
  axes = fig.subplots(1, 3)
  edges = np.flatnonzero(np.diff(np.concatenate([[0], zlb.astype(int), [0]])))
  for ax, (name, label, unit) in zip(axes, panels):
    ax.plot(zeta, unit(table[name]), color="tab:blue")
    for start, stop in zip(edges[::2], edges[1::2]):
      ax.axvspan(zeta[start], zeta[stop - 1], color="tab:red", alpha=0.15, lw=0,
                 label="ZLB binds" if start == edges[0] else None)
    ax.set_xlabel("ζ, preference shock")
    ax.set_title(label, fontsize=10)
  if len(edges):
    axes[0].legend(loc="best", fontsize=8)
  fig.suptitle(title, fontsize=10)
  return fig
