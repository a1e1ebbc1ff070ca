"""Map where an economy has a stable equilibrium, and check its domain rule against its reference.

  python -m apps.existence --out=docs/existence          # rank_zlb, as docs/existence.md

Solves the reference on an (--x, --y) grid of parameters at each of the --settings (the other
parameters at the calibration) and on --draws uniform draws of the box. Writes existence.png (the
map: how often the economy's constraint binds where an equilibrium exists), existence.json (the
map's arrays and the rule's confusion counts) and prints the counts.
"""

import json
import os

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_string("economy", "rank_zlb", "Economy (one with a reference solution).")
flags.DEFINE_string("x", "rho_zeta", "Parameter on the map's horizontal axis.")
flags.DEFINE_string("y", "sigma_zeta", "Parameter on the map's vertical axis.")
flags.DEFINE_string("settings", "theta_pi=2.5,theta_y=0.05;;theta_pi=1.5,theta_y=0.5",
                    "One map panel per setting, ';'-separated, each name=value,... (empty: the "
                    "calibration).")
flags.DEFINE_integer("points", 21, "Grid points per axis of each panel.", lower_bound=3)
flags.DEFINE_integer("draws", 1000, "Uniform draws of the box for the rule's check.",
                     lower_bound=10)
flags.DEFINE_integer("seed", 1, "Seed of the uniform draws.", lower_bound=0)
flags.mark_flag_as_required("out")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nk_keras import constraint, economies, plots
  from nk_keras.reference import existence
  economy = economies.get(FLAGS.economy)
  if not economy.has_reference():
    raise cli.UsageError(f"economy {economy.name!r} has no reference solution: where an "
                         f"equilibrium exists is mapped by one")
  for name in (FLAGS.x, FLAGS.y):
    if name not in economy.param_names:
      raise cli.UsageError(f"--x/--y: {name!r} is not a parameter of {economy.name!r}")
  settings = [cli.parse_assignments("--settings", part) for part in FLAGS.settings.split(";")]
  out = cli.writable_dir(FLAGS.out)
  statistic = (lambda ref: 100 * constraint.frequency(ref)) if economy.constraint else None
  result = existence.existence_map(economy, FLAGS.x, FLAGS.y, settings, FLAGS.points,
                                   statistic=statistic)
  labels = [", ".join(f"{n}={v:g}" for n, v in s.items()) or "calibration" for s in settings]
  plots.save(existence.map_figure(
      result, plots.label(FLAGS.x, economy), plots.label(FLAGS.y, economy), labels,
      f"ergodic {economy.constraint} frequency (%)" if economy.constraint else ""),
      os.path.join(out, "existence.png"))
  counts = existence.rule_confusion(economy, FLAGS.draws, FLAGS.seed)
  with open(os.path.join(out, "existence.json"), "w") as f:
    json.dump({"economy": economy.name, "settings": labels, FLAGS.x: result["x"].tolist(),
               FLAGS.y: result["y"].tolist(), "valid": result["valid"].tolist(),
               "in_domain": result["in_domain"].tolist(),
               "binding_frequency_pct": [[[None if v != v else round(float(v), 3) for v in row]
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
