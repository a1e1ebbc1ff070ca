"""Speed of training and serving, on this machine, in five sections:

  1 regimes           gradient steps/s of each regime at KMR's configuration (batch 100, mc 10,
                      5 x 64 CELU), against KMR's PyTorch code on the same machine
  2 flops             achieved matmul FLOP/s of a gradient step against the measured matmul peak
  3 scaling           steps/s and samples/s over batch x mc (fresh regime, default network)
  4 time_to_accuracy  wall time until the mean scale-normalised error of every policy is below
                      1, 0.3 and 0.1 % and until the bar is met: nk's regimes at the train app's
                      defaults, KMR's configuration to its end, rank_zlb's first stage
  5 serving           evaluations/s of an exported SavedModel against the economy's closed form
                      (compiled TensorFlow)

  python -m benchmarks.speed                     # all sections, about 50 min on 2 cores
  python -m benchmarks.speed --sections=1,2      # a subset
  python -m benchmarks.speed --smoke             # every section at tiny sizes, about a minute (CI)

One module per section (benchmarks/speed/<section>.py, each with `run(settings, out)`), sharing
benchmarks/speed/common.py; this driver runs them. Prints one table per section and writes
every figure to --out (JSON, rewritten after each section). Timings are wall clock: other
processes on the cores lower them, so the load average before and after is recorded with the
figures.
"""

from nk_keras import cli  # first: silences TensorFlow's native start-up lines

import json
import os
import time

from absl import flags

from benchmarks.speed import common, flops, regimes, scaling, serving, time_to_accuracy

FLAGS = flags.FLAGS
SECTIONS = {1: "regimes", 2: "flops", 3: "scaling", 4: "time_to_accuracy", 5: "serving"}
RUNNERS = {1: regimes.run, 2: flops.run, 3: scaling.run, 4: time_to_accuracy.run,
           5: serving.run}

flags.DEFINE_list("sections", [str(s) for s in SECTIONS],
                  "Sections to run: " + ", ".join(f"{k} {v}" for k, v in SECTIONS.items()) + ".")
flags.DEFINE_bool("smoke", False, "Every section at tiny sizes, in about a minute (CI); flags "
                  "given explicitly still win over the smoke sizes.")
flags.DEFINE_string("out", "benchmarks/results.json", "JSON file of every figure.")
flags.DEFINE_integer("steps", 2000, "Gradient steps per timed repeat in section 1 (a multiple "
                     "of 100: whole compiled calls).", lower_bound=100)
flags.DEFINE_integer("repeats", 3, "Timed repeats per configuration in sections 1 and 2 "
                     "(median, min, max).", lower_bound=1)
flags.DEFINE_integer("scaling_points", 1_000_000, "Network points, batch * (1 + mc), per timed "
                     "repeat in section 3: fewer steps for the larger configurations.",
                     lower_bound=1)
flags.DEFINE_list("tta_regimes", ["stepping", "fresh", "internal", "cached"], "Regimes of "
                  "section 4's nk rows (each at the train app's defaults otherwise).")
flags.DEFINE_bool("tta_rank_zlb", True, "Section 4 also trains rank_zlb with the shipped "
                  "model's flags (configs/rank_zlb.flags: distillation) for --zlb_minutes.")
flags.DEFINE_integer("zlb_distill_thetas", 4000, "Thetas the rank_zlb row of section 4 solves "
                     "by time iteration (the shipped model's number).", lower_bound=1)
flags.DEFINE_float("max_minutes", 5.0, "Wall-time budget per nk row in section 4, evaluations "
                   "included (KMR's configuration gets --kmr_minutes).", lower_bound=0.0)
flags.DEFINE_float("kmr_minutes", 20.0, "Wall-time budget of KMR's configuration in section 4 "
                   "(it runs its whole schedule well within it on 2 cores).", lower_bound=0.0)
flags.DEFINE_float("zlb_minutes", 15.0, "Wall-time budget of the rank_zlb row in section 4.",
                   lower_bound=0.0)
flags.DEFINE_integer("eval_every", 1000, "Gradient steps between accuracy evaluations in "
                     "section 4 (below 100 or a multiple of 100).", lower_bound=1)
flags.DEFINE_integer("eval_theta", 2000, "Theta draws per nk accuracy evaluation in section 4.",
                     lower_bound=1)
flags.DEFINE_integer("zlb_eval_theta", 100, "Theta draws of the rank_zlb accuracy evaluations "
                     "in section 4 (solved once by time iteration).", lower_bound=1)
flags.DEFINE_integer("serve_batch", 100_000, "Points per served-policy call in section 5.",
                     lower_bound=1)
flags.DEFINE_integer("matmul_size", 2048, "Side of the large square matmul that measures the "
                     "peak in section 2.", lower_bound=1)

flags.register_validator("steps", lambda v: v % 100 == 0, "--steps must be a multiple of 100")
flags.register_validator("eval_every", lambda v: v < 100 or v % 100 == 0,
                         "--eval_every must be below 100 or a multiple of 100")

# `--smoke`: seconds per section (most of it compilation), every code path still taken.
SMOKE = dict(steps=200, repeats=2, scaling_points=100_000, max_minutes=5 / 60,
             kmr_minutes=5 / 60, zlb_minutes=5 / 60, eval_every=100, eval_theta=500,
             zlb_eval_theta=4, tta_regimes=["stepping"], tta_rank_zlb=True,
             zlb_distill_thetas=8,
             serve_batch=10_000, matmul_size=512)


def settings():
  """Sizes from the flags, or the smoke sizes for flags not given explicitly."""
  s = {name: FLAGS[name].value for name in SMOKE}
  if FLAGS.smoke:
    s.update({k: v for k, v in SMOKE.items() if not FLAGS[k].present})
  s["max_minutes"] = {"nk": s["max_minutes"], "kmr": s.pop("kmr_minutes"),
                      "rank_zlb": s.pop("zlb_minutes")}
  s["eval_theta"] = {"nk": s["eval_theta"], "rank_zlb": s.pop("zlb_eval_theta")}
  s["grid"] = ((100, 1000), (2,)) if FLAGS.smoke else ((100, 1000, 10_000), (2, 10, 50))
  s["scaling_repeats"] = 1            # after a warm-up: keeps section 3 near a minute
  s["chain"] = 100 if FLAGS.smoke else 500      # network-shaped matmuls per compiled call
  return s


def chosen_sections():
  try:
    chosen = sorted({int(v) for v in FLAGS.sections})
  except ValueError:
    chosen = None
  if not chosen or any(v not in SECTIONS for v in chosen):
    raise cli.UsageError(f"--sections must list numbers among {', '.join(map(str, SECTIONS))}, "
                         f"got {','.join(FLAGS.sections)!r}")
  return chosen


def write(out, path):
  with open(path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  sections = chosen_sections()
  # Every configuration traces its own train function; TF's retracing warning says nothing here.
  import tensorflow as tf
  from absl import logging
  tf.get_logger().setLevel("ERROR")
  logging.set_verbosity(logging.ERROR)
  cli.writable_dir(os.path.dirname(os.path.abspath(FLAGS.out)))
  from nk_keras import export
  s = settings()
  load = os.getloadavg()[0]
  out = {"meta": {"smoke": FLAGS.smoke, "sections": [SECTIONS[k] for k in sections],
                  "settings": s, "cpu_count": os.cpu_count(), "load_average_start": load,
                  "versions": export.versions(), "git_commit": export.git_commit(),
                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}}
  print(f"benchmark{' (smoke)' if FLAGS.smoke else ''}: sections "
        f"{', '.join(SECTIONS[k] for k in sections)}; {os.cpu_count()} CPUs, "
        f"load average {load:.2f}")
  if load > 0.5:
    print("note: other processes are using the CPUs; figures are lower than on an idle machine")
  start = time.perf_counter()
  for k in sections:
    RUNNERS[k](s, out)
    out["meta"]["load_average_end"] = os.getloadavg()[0]
    out["meta"]["total_s"] = time.perf_counter() - start
    write(out, FLAGS.out)                               # a stopped run keeps its sections
  print(f"\ntotal {common.duration(out['meta']['total_s'])}; results in {FLAGS.out}")



if __name__ == "__main__":
  cli.run(main)
