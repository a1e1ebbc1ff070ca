"""The time-iteration reference solution of rank_zlb at one theta (docs/models.md).

  python -m apps.reference --economy=rank_zlb --theta=rho_zeta=0.8,sigma_zeta=0.015 --out=DIR

Solves at the calibration with --theta's overrides, prints the policy at -2.5..2.5 ergodic std of
zeta and writes to --out: policy.csv (the table), summary.json (converged, iterations, time,
ergodic std, ZLB frequency) and policy.png (N, Pi and R against zeta, ZLB region shaded).
"""

import json
import os

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_enum("economy", "rank_zlb", ["rank_zlb"], "Economy (one with a ZLB reference).")
flags.DEFINE_string("theta", "", "Overrides of the calibration: name=value,...")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_integer("points", 11, "Table rows between -2.5 and 2.5 ergodic std.", lower_bound=2)
flags.mark_flag_as_required("out")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import numpy as np
  import tensorflow as tf
  from nk_keras import economies, plots
  from nk_keras.economies import rank_zlb
  from nk_keras.reference.figures import policy_figure
  economy = economies.get(FLAGS.economy)
  values = cli.parse_assignments("--theta", FLAGS.theta)
  # Outside the existence rule too: time iteration itself says whether an equilibrium exists.
  theta = cli.theta_with(economy, "--theta", values, domain=False).astype(np.float64)
  out = cli.writable_dir(FLAGS.out)
  ref = economy.reference(theta[None])
  where = ", ".join(f"{n}={v:g}" for n, v in zip(economy.param_names, theta))
  if not ref.valid[0]:
    raise cli.UsageError(f"no stable equilibrium at {where} (time iteration stopped without "
                         f"converging after {ref.iterations[0]} iterations)")
  def table(k):
    zeta = k * ref.std[0]
    policies = ref.policies(zeta[None, :, None])[0]
    levels = {n: v.numpy() for n, v in economy.outputs(
        tf.constant(zeta[:, None]), tf.constant(np.repeat(theta[None], len(k), 0)),
        tf.constant(policies)).items()}
    zlb = economy.notional_log_rate(theta[None], policies) < 0
    return zeta, levels, zlb
  k = np.linspace(-2.5, 2.5, FLAGS.points)
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


if __name__ == "__main__":
  cli.run(main)
