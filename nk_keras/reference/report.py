"""The reference solution at one theta, as the reference app writes it: a policy table, a
summary and a figure."""

import json
import os

from nk_keras.errors import UserError


def solve_and_write(economy, overrides, out, points=11):
  """Solves `economy` (a name) with its reference at the calibration with `overrides`
  (`name=value,...`), prints the policy at `points` values of the first state from -2.5 to 2.5
  ergodic std (the other states at the steady state) and writes to `out`: policy.csv (the
  table), summary.json (converged, iterations, time, ergodic std and mean, how often the
  economy's constraint binds), policy.png (the served outputs against the first state, the
  binding region shaded). Returns the summary."""
  import numpy as np
  import tensorflow as tf
  from nk_keras import cli, constraint, economies, plots, simulation
  from nk_keras.reference.figures import policy_figure
  from nk_keras import sizes
  sizes.reference_table(points)
  economy = economies.get(economy)
  if not economy.has_reference():
    raise UserError(f"economy {economy.name!r} has no reference solution")
  values = cli.parse_assignments("--theta", overrides)
  # Outside the existence rule too: time iteration itself says whether an equilibrium exists.
  theta = cli.theta_with(economy, "--theta", values, domain=False).astype(np.float64)
  out = cli.writable_dir(out)
  ref = economy.reference(theta[None])
  where = ", ".join(f"{n}={v:g}" for n, v in zip(economy.param_names, theta))
  if not ref.valid[0]:
    raise UserError(f"no stable equilibrium at {where} (the reference stopped without "
                    f"converging after {ref.iterations[0]} iterations)")
  first = economy.state_names[0]
  centre = simulation.steady_state(economy, tf.constant(theta[None], tf.float32)).numpy()[0]
  std = economy.ergodic_std(tf.constant(theta[None], tf.float32)).numpy()[0, 0]

  def table(k):
    state = np.repeat(centre[None].astype(np.float64), len(k), axis=0)
    state[:, 0] += k * std
    policies = ref.policies(state[None])[0]
    levels = {n: v.numpy() for n, v in economy.outputs(
        tf.constant(state), tf.constant(np.repeat(theta[None], len(k), 0)),
        tf.constant(policies)).items()}
    binds = (constraint.binds(constraint.slack(economy, theta, state, policies))
             if economy.constraint else np.zeros(len(k), bool))
    return state[:, 0], levels, binds

  k = np.linspace(-2.5, 2.5, points)
  x, levels, binds = table(k)
  names = list(economy.output_names)
  tag = (economy.constraint or "binds").lower()
  lines = [",".join(["k_std", first] + names + [tag])] + [
      ",".join([f"{k[i]:.3f}", f"{x[i]:.6g}"] + [f"{levels[n][i]:.8f}" for n in names]
               + [str(int(binds[i]))]) for i in range(len(k))]
  with open(os.path.join(out, "policy.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  summary = {"economy": economy.name, "theta": dict(zip(economy.param_names, theta.tolist())),
             "converged": True, "iterations": int(ref.iterations[0]), "seconds": ref.seconds,
             "ergodic_std": dict(zip(economy.policy_names, ref.scale()[0].tolist())),
             "ergodic_mean": dict(zip(economy.policy_names, ref.ergodic_mean()[0].tolist()))}
  if economy.constraint:
    summary[f"{tag}_frequency"] = float(constraint.frequency(ref)[0])
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  fine = table(np.linspace(-3, 3, 301))
  plots.save(policy_figure(economy, fine[0], fine[1], fine[2], where),
             os.path.join(out, "policy.png"))
  binding = (f"; the {economy.constraint} binds {100 * summary[f'{tag}_frequency']:.1f} % of "
             "the time" if economy.constraint else "")
  print(f"{where}: converged in {ref.iterations[0]} iterations ({ref.seconds:.2f} s){binding}")
  print("\n".join(line.replace(",", "\t") for line in lines))
  print(f"wrote policy.csv, summary.json, policy.png to {out}")
  return summary
