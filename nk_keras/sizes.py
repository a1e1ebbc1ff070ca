"""The memory a run will need, estimated from its sizes before anything is allocated.

A size too large for the machine (`simulate --periods=1e9`, `evaluate --n_theta=1e8`) used to
be found by the kernel's OOM killer, minutes in and taking other processes with it, or by a
`MemoryError` reported as a bug. `check` refuses it at once, in one line that names the flag and
the largest value that fits. The bytes per unit (training's measured, the others counted from
the arrays allocated; docs/log/2026-build-history.md, "Reliability") carry a margin and model
no temporary in detail: the refusal is for sizes far out of reach.
"""

import os

from nk_keras.errors import UserError

# Of the machine's memory, the share a run may plan to use: the rest is for what the estimates
# leave out (TF's own pools, the figures) and for the system. The machine's whole memory, not
# what is free at the moment: the same command gets the same answer on the same machine, and a
# busy machine does not refuse a run that waiting would let through.
SHARE = 0.8


class TooLarge(UserError):
  """A size whose run would not fit in memory."""


def available():
  """Bytes of memory a run may have: the machine's (MemTotal), or a cgroup's limit (a
  container's) where lower; None where neither can be read."""
  total = _meminfo("MemTotal")
  for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    try:
      with open(path) as f:
        limit = f.read().strip()
    except OSError:
      continue
    if limit.isdigit():
      total = min(total, int(limit)) if total else int(limit)
  return total


def _meminfo(key):
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith(key + ":"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  return None


def gib(n):
  return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check(flag, value, per_unit, fixed=0, free=None):
  """A `TooLarge` naming `--flag` if `fixed + value * per_unit` bytes exceed `SHARE` of the
  memory (`free`, default `available()`); with it, the largest value that fits. Nothing where
  the memory cannot be read."""
  free = available() if free is None else free
  if free is None:
    return
  budget = SHARE * free
  need = fixed + value * per_unit
  if need <= budget:
    return
  fits = int((budget - fixed) // per_unit)
  hint = (f"at most --{flag}={fits:,} fits" if fits >= 1 else
          "nothing of this size fits")
  raise TooLarge(f"--{flag}={value:,} needs about {gib(need)} of memory, more than this "
                 f"machine's {gib(free)} allows; {hint}")


# Bytes per unit of each checked size, with a margin (docs/log/2026-build-history.md,
# "Reliability"). The training and filter ones scale with the network or filter dimensions.

def simulate(options, economy):
  """The simulate app's sizes: the path's periods, the moments' chains."""
  columns = 1 + economy.n_state + 2 * len(economy.policy_names)
  check("periods", options.periods, SIMULATED_PERIOD * columns)
  check("moment_chains", options.moment_chains, SIMULATED_PERIOD * columns
        * options.moment_periods)


def evaluate(n_theta, economy, mc=100, flag="n_theta"):
  """The accuracy report's theta draws (`--flag`): each at its levels of the state, with `mc`
  shocks each."""
  levels = max(1, len(getattr(economy, "accuracy_levels", ()) or ()))
  check(flag, n_theta, levels * (EVALUATED_POINT + 4 * mc * economy.n_shock))


def reference_table(points):
  """The reference app's table rows."""
  check("points", points, TABLE_ROW)


def training(options, economy):
  """A training run's batch: each point's network activations (forward and backward) for its
  `mc` shocks, the residual Jacobians of the newton and relative weightings."""
  per_point = 4 * (1 + 2 * options.mc) * (TRAINED_ACTIVATIONS * options.width * options.depth
                                          + 16 * (economy.n_state + len(economy.policy_names)))
  check("batch", options.batch, per_point)
  if options.regime == "cached":
    check("pool", options.pool, 4 * (economy.n_state + len(economy.param_names)) * 4)


def estimation(options, economy, n_params):
  """The estimate app's particle filter (a chunk of thetas times the particles per compiled
  call) and its draws (Sobol thetas, their likelihoods, the surrogate's data)."""
  from nk_keras.estimation import particle_filter
  check("particles", options.particles,
        particle_filter.CHUNK * FILTERED_PARTICLE * (economy.n_state + len(economy.policy_names)))
  check("draws", options.draws, DRAW_BYTES * (n_params + 4) * (1 + (options.refine or 0)))


SIMULATED_PERIOD = 64      # per column: float32 and float64 copies, the frame, the CSV text
EVALUATED_POINT = 2048     # per state point: policies, references, errors, residual chunks
TABLE_ROW = 1024           # per row: the state, levels, and the row's text
TRAINED_ACTIVATIONS = 6    # floats per unit of width and depth per network row
FILTERED_PARTICLE = 96     # bytes per particle and state or policy: states, weights, ancestors
DRAW_BYTES = 64            # per draw and parameter: the Sobol points, the datasets, the fit
