"""The reference solution at one theta, as the reference app writes it: a policy table, a
summary and a figure."""

import json
import os

from nk_keras.errors import UserError


def solve_and_write(economy, overrides, out, points=11):
  """Solves `economy` (a name) by time iteration at the calibration with `overrides`
  (`name=value,...`), prints the policy at `points` states from -2.5 to 2.5 ergodic std and
  writes to `out`: policy.csv (the table), summary.json (converged, iterations, time, ergodic
  std and mean, ZLB frequency), policy.png (N, Pi and R against zeta, the ZLB region shaded).
  Returns the summary."""
  import numpy as np
  import tensorflow as tf
  from nk_keras import cli, economies, plots
  from nk_keras.economies import rank_zlb
  from nk_keras.reference.figures import policy_figure
  economy = economies.get(economy)
  values = cli.parse_assignments("--theta", overrides)
  # Outside the existence rule too: time iteration itself says whether an equilibrium exists.
  theta = cli.theta_with(economy, "--theta", values, domain=False).astype(np.float64)
  out = cli.writable_dir(out)
  ref = economy.reference(theta[None])
  where = ", ".join(f"{n}={v:g}" for n, v in zip(economy.param_names, theta))
  if not ref.valid[0]:
    raise UserError(f"no stable equilibrium at {where} (time iteration stopped without "
                    f"converging after {ref.iterations[0]} iterations)")

  def table(k):
    zeta = k * ref.std[0]
    policies = ref.policies(zeta[None, :, None])[0]
    levels = {n: v.numpy() for n, v in economy.outputs(
        tf.constant(zeta[:, None]), tf.constant(np.repeat(theta[None], len(k), 0)),
        tf.constant(policies)).items()}
    zlb = economy.notional_log_rate(theta[None], policies) < 0
    return zeta, levels, zlb

  k = np.linspace(-2.5, 2.5, points)
  zeta, levels, zlb = table(k)
  lines = ["k_std,zeta,N,Pi,R,zlb"] + [
      f"{k[i]:.3f},{zeta[i]:.6g},{levels['N'][i]:.8f},{levels['Pi'][i]:.8f},"
      f"{levels['R'][i]:.8f},{int(zlb[i])}" for i in range(len(k))]
  with open(os.path.join(out, "policy.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  summary = {"economy": economy.name, "theta": dict(zip(economy.param_names, theta.tolist())),
             "converged": True, "iterations": int(ref.iterations[0]), "seconds": ref.seconds,
             "ergodic_std": dict(zip(economy.policy_names, ref.scale()[0].tolist())),
             "ergodic_mean": dict(zip(economy.policy_names, ref.ergodic_mean()[0].tolist())),
             "zlb_frequency": float(rank_zlb.zlb_frequency(ref)[0])}
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  fine = table(np.linspace(-3, 3, 301))
  plots.save(policy_figure(fine[0], fine[1], fine[2], where), os.path.join(out, "policy.png"))
  print(f"{where}: converged in {ref.iterations[0]} iterations ({ref.seconds:.2f} s); ZLB binds "
        f"{100 * summary['zlb_frequency']:.1f} % of the time")
  print("\n".join(line.replace(",", "\t") for line in lines))
  print(f"wrote policy.csv, summary.json, policy.png to {out}")
  return summary
