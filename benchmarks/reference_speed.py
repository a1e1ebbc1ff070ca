"""Time of the time-iteration reference per theta: one theta alone, and many solved together.

  python -m benchmarks.reference_speed [--thetas=100] [--block=16]

Prints seconds per theta for the calibration alone (after a first, tracing call), and for
`--thetas` uniform draws inside the domain solved `--block` at a time, with the iterations taken.
"""

import time

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("economy", "rank_zlb", "Economy with a time-iteration reference.")
flags.DEFINE_integer("thetas", 100, "Thetas of the vectorised measurement.", lower_bound=1)
flags.DEFINE_string("blocks", "1,16,64", "Thetas per block (comma-separated) to compare.")


def main(argv):
  import numpy as np
  from nk_keras import accuracy, economies
  economy = economies.get(FLAGS.economy)
  calibration = economy.calibration[None].astype(np.float64)
  economy.reference(calibration)                       # traces the iteration's graph
  start = time.perf_counter()
  one = economy.reference(calibration)
  print(f"{economy.name} at the calibration: {time.perf_counter() - start:.3f} s, "
        f"{one.iterations[0]} iterations")
  theta = accuracy.draw_box(economy, FLAGS.thetas, seed=3).numpy().astype(np.float64)
  from nk_keras.reference import time_iteration
  for block in (int(b) for b in FLAGS.blocks.split(",")):
    start = time.perf_counter()
    ref = time_iteration.solve(economy, theta, block=block, **economy.reference_options)
    seconds = time.perf_counter() - start
    print(f"{len(theta)} thetas in blocks of {block}: {seconds:.1f} s, "
          f"{seconds / len(theta):.3f} s per theta, median {np.median(ref.iterations):.0f} "
          f"iterations, {ref.valid.mean():.1%} converged")


if __name__ == "__main__":
  cli.run(main)
