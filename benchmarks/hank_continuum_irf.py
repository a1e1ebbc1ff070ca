"""hank_zlb's small-shock responses against its continuum's, as the number of households grows.

  python -m benchmarks.hank_continuum_irf --models=DIR_L10,DIR_L25,DIR_L50 [--draws=1000]

For each exported hank_zlb (any L), `HankZLB.continuum_responses`: the network economy's GIRF to
a -0.1 std preference innovation at the calibration over `--draws` ergodic starts, against the
continuum's first-order response from the sequence-space Jacobian (`hank_continuum`, the `hank`
extra), at the continuum's peak (the impact). Issue 26's bar: within 15 % for output and
inflation.
"""

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", None, "Exported hank_zlb SavedModel directories.", required=True)
flags.DEFINE_integer("draws", 1000, "Ergodic starts of each GIRF.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the starts and innovations.", lower_bound=0)


def main(argv):
  del argv
  from nk_keras import export
  print("| model | L | log N: continuum / network / gap | log Pi: continuum / network / gap |\n"
        "|---|---|---|---|")
  for path in FLAGS.models:
    policy = export.LoadedPolicy(path)
    r, _ = policy.economy.continuum_responses(policy, draws=FLAGS.draws, seed=FLAGS.seed)
    cells = [f"{r[n]['continuum_peak']:.5f} / {r[n]['network_at_peak']:.5f} / "
             f"{100 * r[n]['relative_gap']:+.1f} %" for n in ("N", "Pi")]
    print(f"| {path} | {r['L']} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
  app.run(main)
