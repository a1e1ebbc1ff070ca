"""Simulation statistics of an economy's occasionally binding constraint (`Economy.constraint`,
e.g. rank_zlb's zero lower bound), network vs reference.

The network and the reference (`simulation.Solution`: time iteration at the one theta) are
evaluated on the same simulated states, so their differences are policy errors, not sampling
noise. The constraint binds where the economy's `constraint_slack` is negative. Tables are in
model units; moments and figures use the economy's `display_units`.
"""

import numpy as np
import tensorflow as tf

from nk_keras import simulation


def units(economy):
  """Factors of the moments' units (`display_units`, offsets dropped), value name -> factor."""
  return {name: factor for name, (factor, _, _) in economy.display_units.items()}


def slack(economy, theta, state, policies):
  """`constraint_slack` `[...]` at `state` `[..., n_state]` and `policies` `[..., n_pol]` for one
  `theta` `[n_params]` (NumPy in, NumPy out)."""
  state = np.asarray(state, np.float64)
  thetas = np.broadcast_to(np.asarray(theta, np.float64), state.shape[:-1] + (len(theta),))
  return np.asarray(economy.constraint_slack(tf.constant(state), tf.constant(thetas),
                                             tf.constant(np.asarray(policies, np.float64))))


def binds(values):
  """Where the constraint binds, for slack values of any shape."""
  return np.asarray(values) < 0.0


def frequency(reference):
  """The reference's ergodic probability `[n]` that the constraint binds
  (`Reference.probability_below`)."""
  economy, theta = reference.economy, reference.theta[:, None, :]
  return reference.probability_below(
      lambda state, values: economy.constraint_slack(state, theta, values))


def spell_statistics(binding):
  """Spells of a binding constraint in `binding` `[periods, chains]` bool: share of periods
  where it binds, the number of spells, their mean and max length (periods) and spells per
  100 periods. A spell running into a chain's first or last period is cut there (chains are
  long, so rare)."""
  binding = np.asarray(binding, bool)
  periods, chains = binding.shape
  padded = np.zeros((chains, periods + 2), np.int8)
  padded[:, 1:-1] = binding.T
  change = np.diff(padded, axis=1).ravel()            # chain after chain: starts pair with ends
  lengths = np.flatnonzero(change == -1) - np.flatnonzero(change == 1)
  return {"share_binding": float(binding.mean()), "spells": int(lengths.size),
          "mean_spell": float(lengths.mean()) if lengths.size else 0.0,
          "max_spell": int(lengths.max()) if lengths.size else 0,
          "spells_per_100_periods": float(100 * lengths.size / binding.size)}


def statistics(economy, policy, theta, solution, chains=200, periods=1000, seed=0):
  """How often the constraint binds and its spells, from `chains` ergodic paths of `periods`
  periods, network vs reference on the same states, with the reference's ergodic frequency."""
  states = simulation.state_paths(economy, theta, periods, chains, seed, "ergodic",
                                  stream=2, policy=policy)                  # [T, C, S]
  out = {"constraint": economy.constraint, "chains": chains, "periods_per_chain": periods}
  for kind, pol in simulation.with_reference(policy, solution, states, theta):
    out["network" if kind == "nn" else "reference"] = spell_statistics(
        binds(slack(economy, theta, states, pol)))
  if solution.reference is not None:
    out["reference_ergodic_frequency"] = float(frequency(solution.reference)[0])
  return out


def girf(economy, policy, theta, solution, shock, horizon=40, draws=2000, seed=0, which=0):
  """`simulation.generalized_impulse_response` plus the share of shocked and baseline paths
  where the constraint binds in each period (`bind_share_<nn|reference>`,
  `bind_share_baseline_<...>`)."""
  table, raw = simulation.generalized_impulse_response(
      economy, policy, theta, shock, horizon, draws, seed, solution, which)
  for kind in ("nn", solution.key) if solution.key else ("nn",):
    for path, column in (("shocked", f"bind_share_{kind}"),
                         ("baseline", f"bind_share_baseline_{kind}")):
      table[column] = binds(slack(economy, theta, raw["state"][path],
                                  raw[kind]["policies"][path])).mean(axis=1)
  return table


def with_counterpart(economy, theta, tables, horizon, draws, seed):
  """Adds to each GIRF table (innovation in std -> table) the `counterpart` economy's reference
  response on the same innovations, for the values both have: `<value>_<counterpart>` and
  `bind_share_<counterpart>`."""
  from nk_keras import economies
  other = economies.get(economy.counterpart)
  solution = simulation.Solution(other, theta)
  shared = set(simulation.value_names(economy))
  for shock, table in tables.items():
    theirs = girf(other, solution.reference.as_policy(), theta, solution, shock, horizon, draws,
                  seed)
    table.update({f"{name}_{other.name}": theirs[f"{name}_reference"]
                  for name in simulation.value_names(other) if name in shared})
    table[f"bind_share_{other.name}"] = theirs["bind_share_reference"]


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
  """Markdown of `statistics`."""
  keys = ("share_binding", "spells", "mean_spell", "max_spell", "spells_per_100_periods")
  sources = [s for s in ("network", "reference") if s in stats]
  # Both columns read the network's paths: with an endogenous state (an inertial rule's lagged
  # rate) the reference's own ergodic law differs, hence its exact frequency below.
  heads = {"network": "network", "reference": "reference on the network's states"}
  lines = [f"| {stats['constraint']} statistic | {' | '.join(heads[s] for s in sources)} |",
           "|---" * (1 + len(sources)) + "|"]
  lines += [f"| {k} | " + " | ".join(f"{stats[s][k]:.6g}" for s in sources) + " |"
            for k in keys]
  if "reference_ergodic_frequency" in stats:
    lines.append(f"| the reference's own ergodic frequency (exact) | | "
                 f"{stats['reference_ergodic_frequency']:.6g} |")
  return "\n".join(lines) + "\n"


def write_simulation_extras(economy, policy, theta, solution, out, described, horizon=40,
                            draws=2000, chains=200, periods=1000, seed=0):
  """The simulate app's outputs for the constraint in `out`: GIRFs to -1 and -3 std
  innovations of the first shock (girf_1std.csv, girf_3std.csv, girf.png) and the constraint's
  statistics, returned with the GIRFs' impact responses (model units) as a JSON-ready dict; also
  the file names written."""
  import os
  from nk_keras import constraint_plots, plots
  tables = {-k: girf(economy, policy, theta, solution, -k, horizon, draws, seed) for k in (1, 3)}
  if economy.counterpart:
    with_counterpart(economy, theta, tables, horizon, draws, seed)
  for shock, table in tables.items():
    simulation.write_csv(os.path.join(out, f"girf_{-shock}std.csv"), table)
  plots.save(constraint_plots.girfs(
      tables, economy, "Generalised impulse responses to a negative innovation of "
      f"{economy.shock_names[0]} ({described}; mean over {draws} ergodic starts)"),
      os.path.join(out, "girf.png"))
  report = {"constraint": statistics(economy, policy, theta, solution, chains, periods, seed),
            "girf": {f"{shock:+g}_std": {
                "draws": draws,
                **{f"impact_{c}": float(v[0]) for c, v in table.items() if c != "period"}}
                for shock, table in tables.items()}}
  return report, ["girf_1std.csv", "girf_3std.csv", "girf.png"]
