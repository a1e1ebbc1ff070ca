"""Figure of the reference app: a reference policy against the first state."""

from matplotlib.figure import Figure

from nk_keras.plots import label


def policy_figure(economy, x, table, binds, title):
  """Each served output (`table`: name -> levels `[m]`, shown in the economy's figure units of
  its log) against the first state `x` `[m]`, where the economy's constraint binds (`binds`
  `[m]` bool) shaded."""
  import numpy as np
  names = list(table)
  fig = Figure(figsize=(3.7 * len(names), 3.4), layout="constrained")
  axes = fig.subplots(1, len(names))
  edges = np.flatnonzero(np.diff(np.concatenate([[0], binds.astype(int), [0]])))
  for ax, name in zip(axes, names):
    logs = np.log(table[name]) - economy.display_units.get(name, (0, 0.0, ""))[1]
    ax.plot(x, economy.display(name, logs), color="tab:blue")
    for start, stop in zip(edges[::2], edges[1::2]):
      ax.axvspan(x[start], x[stop - 1], color="tab:red", alpha=0.15, lw=0,
                 label=f"{economy.constraint} binds" if start == edges[0] else None)
    ax.set_xlabel(label(economy.state_names[0], economy))
    ax.set_title(f"{label(name, economy)}: {economy.display_unit(name)}", fontsize=9)
  if len(edges):
    axes[0].legend(loc="best", fontsize=8)
  fig.suptitle(title, fontsize=10)
  return fig
