"""Simulation statistics of an economy with a zero lower bound (rank_zlb), network vs reference.

The network and the reference (`simulation.Solution`: time iteration at the one theta) are
evaluated on the same simulated states, so their differences are policy errors, not sampling
noise. The ZLB binds where the served rate is one: log R = 0 exactly (`log_rate` is a max).
Tables are in model units (log N, log(Pi/Pibar), log R); `UNITS` annualises inflation and the
rate (x 400) for moments and figures.
"""

import numpy as np

from nk_keras import simulation

UNITS = {"Pi": 400.0, "R": 400.0}   # quarterly logs -> annualised percent (moments)


def display(economy, name, values, difference=False):
  """Model units -> figure units: 100 log N (%), annualised inflation 400 log Pi and rate
  400 log R (%); `difference`: a change (no inflation target added)."""
  if name == "Pi":
    offset = 0.0 if difference else economy.fixed["log_Pibar"]
    return 400.0 * (np.asarray(values) + offset)
  return (400.0 if name == "R" else 100.0) * np.asarray(values)


def binds(log_rate):
  """Where the ZLB binds, for log R values of any shape."""
  return np.asarray(log_rate) <= 0.0


def spell_statistics(at_zlb):
  """Spells at the ZLB in `at_zlb` `[periods, chains]` bool: share of periods at the ZLB, the
  number of spells, their mean and max length (periods) and spells per 100 periods. A spell
  running into a chain's first or last period is cut there (chains are long, so rare)."""
  at_zlb = np.asarray(at_zlb, bool)
  periods, chains = at_zlb.shape
  padded = np.zeros((chains, periods + 2), np.int8)
  padded[:, 1:-1] = at_zlb.T
  change = np.diff(padded, axis=1).ravel()            # chain after chain: starts pair with ends
  lengths = np.flatnonzero(change == -1) - np.flatnonzero(change == 1)
  return {"share_at_zlb": float(at_zlb.mean()), "spells": int(lengths.size),
          "mean_spell": float(lengths.mean()) if lengths.size else 0.0,
          "max_spell": int(lengths.max()) if lengths.size else 0,
          "spells_per_100_periods": float(100 * lengths.size / at_zlb.size)}


def zlb_statistics(economy, policy, theta, solution, chains=200, periods=1000, seed=0):
  """ZLB frequency and spell statistics from `chains` ergodic paths of `periods` periods,
  network vs reference on the same states, with the reference's exact ergodic frequency."""
  from nk_keras.economies import rank_zlb
  zeta = simulation.state_paths(economy, theta, periods, chains, seed, "ergodic",
                                stream=2, policy=policy)                    # [T, C, S]
  out = {"chains": chains, "periods_per_chain": periods}
  for kind, pol in (("network", simulation.evaluate(policy, zeta, theta)),
                    ("reference", solution(zeta))):
    log_rate = simulation.values(economy, theta, zeta, pol)["R"]
    out[kind] = spell_statistics(binds(log_rate))
  out["reference_ergodic_frequency"] = float(rank_zlb.zlb_frequency(solution.reference)[0])
  return out


def girf(economy, policy, theta, solution, shock, horizon=40, draws=2000, seed=0):
  """`simulation.generalized_impulse_response` plus the share of shocked and baseline paths
  at the ZLB in each period (`zlb_share_<nn|reference>`, `zlb_share_baseline_<...>`)."""
  table, raw = simulation.generalized_impulse_response(
      economy, policy, theta, shock, horizon, draws, seed, solution)
  for kind in ("nn", solution.key):
    table[f"zlb_share_{kind}"] = binds(raw[kind]["shocked"]["R"]).mean(axis=1)
    table[f"zlb_share_baseline_{kind}"] = binds(raw[kind]["baseline"]["R"]).mean(axis=1)
  return table


def moments_table(moments):
  """Markdown: one row per moment, one column per source (network, reference, analytical)."""
  sources = [s for s in ("network", "closed_form_simulated", "reference_simulated",
                         "analytical") if moments.get(s)]
  lines = ["| moment | " + " | ".join(sources) + " |", "|---" * (1 + len(sources)) + "|"]
  for key in moments["network"]:
    cells = [moments[s].get(key) for s in sources]
    lines.append(f"| {key} | " + " | ".join("n/a" if v is None else f"{v:.6g}" for v in cells)
                 + " |")
  return "\n".join(lines) + "\n"


def statistics_table(stats):
  """Markdown of `zlb_statistics`."""
  keys = ("share_at_zlb", "spells", "mean_spell", "max_spell", "spells_per_100_periods")
  lines = ["| ZLB statistic | network | reference |", "|---|---|---|"]
  lines += [f"| {k} | {stats['network'][k]:.6g} | {stats['reference'][k]:.6g} |" for k in keys]
  lines.append(f"| ergodic frequency (reference, exact) | | "
               f"{stats['reference_ergodic_frequency']:.6g} |")
  return "\n".join(lines) + "\n"


def write_simulation_extras(economy, policy, theta, solution, out, described, horizon=40,
                            draws=2000, chains=200, periods=1000, seed=0):
  """The simulate app's ZLB outputs in `out`: GIRFs to -1 and -3 std innovations
  (girf_1std.csv, girf_3std.csv, girf.png) and the ZLB statistics, returned with the GIRFs'
  impact responses (model units) as a JSON-ready dict; also the file names written."""
  import os
  from nk_keras import plots, zlb_plots
  tables = {-k: girf(economy, policy, theta, solution, -k, horizon, draws, seed) for k in (1, 3)}
  for shock, table in tables.items():
    simulation.write_csv(os.path.join(out, f"girf_{-shock}std.csv"), table)
  plots.save(zlb_plots.girfs(tables, economy, "Generalised impulse responses to a negative "
                             f"innovation of zeta ({described}; mean over {draws} ergodic "
                             "starts)"), os.path.join(out, "girf.png"))
  report = {"zlb": zlb_statistics(economy, policy, theta, solution, chains, periods, seed),
            "girf": {f"{shock:+g}_std": {
                "draws": draws,
                **{f"impact_{c}": float(v[0]) for c, v in table.items() if c != "period"}}
                for shock, table in tables.items()}}
  return report, ["girf_1std.csv", "girf_3std.csv", "girf.png"]
