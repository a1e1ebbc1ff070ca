"""Map where rank_zlb has a stable equilibrium, and check the domain rule against time iteration.

  python -m apps.existence --out=docs/existence

Solves the reference on a (rho_zeta, sigma_zeta) grid at three settings of (theta_pi, theta_y)
(phi at the calibration) and on --draws uniform draws of the box. Writes existence.png (the
map: ZLB frequency where an equilibrium exists), existence.json (the map's arrays and the rule's
confusion counts) and prints the counts.
"""

import json
import os

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_integer("points", 21, "Grid points per axis of each panel.", lower_bound=3)
flags.DEFINE_integer("draws", 1000, "Uniform draws of the box for the rule's check.",
                     lower_bound=10)
flags.DEFINE_integer("seed", 1, "Seed of the uniform draws.", lower_bound=0)
flags.mark_flag_as_required("out")

SETTINGS = ({"theta_pi": 2.5, "theta_y": 0.05}, {}, {"theta_pi": 1.5, "theta_y": 0.5})


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nk_keras import economies, plots
  from nk_keras.economies import rank_zlb
  from nk_keras.reference import existence
  economy = economies.get("rank_zlb")
  out = cli.writable_dir(FLAGS.out)
  result = existence.existence_map(economy, "rho_zeta", "sigma_zeta", SETTINGS, FLAGS.points,
                                   statistic=lambda ref: 100 * rank_zlb.zlb_frequency(ref))
  labels = [", ".join(f"{n}={economy.theta_from(s)[economy.param_names.index(n)]:g}"
                      for n in ("theta_pi", "theta_y", "phi")) for s in SETTINGS]
  plots.save(existence.map_figure(result, "ρ_ζ, shock persistence", "σ_ζ, shock std", labels,
                                  "ergodic ZLB frequency (%)"), os.path.join(out, "existence.png"))
  counts = existence.rule_confusion(economy, FLAGS.draws, FLAGS.seed)
  with open(os.path.join(out, "existence.json"), "w") as f:
    json.dump({"settings": labels, "rho_zeta": result["x"].tolist(),
               "sigma_zeta": result["y"].tolist(), "valid": result["valid"].tolist(),
               "in_domain": result["in_domain"].tolist(),
               "zlb_frequency_pct": [[[None if v != v else round(float(v), 3) for v in row]
                                      for row in panel] for panel in result["statistic"]],
               "rule_vs_time_iteration": counts, "map_seconds": result["seconds"]}, f, indent=1)
  print(f"map: {result['valid'].mean():.1%} of grid points have an equilibrium "
        f"({result['seconds']:.0f} s)")
  print(f"rule vs time iteration on {counts['draws']} uniform draws: "
        f"{counts['no_equilibrium']} without equilibrium, {counts['inside_without_equilibrium']} "
        f"of them inside the rule; {counts['outside_with_equilibrium']} with an equilibrium "
        f"outside it (keeps {counts['kept_share']:.1%})")
  print(f"wrote existence.png, existence.json to {out}")


def run():
  """The console script `nk-existence`."""
  cli.run(main)


if __name__ == "__main__":
  run()
