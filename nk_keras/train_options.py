"""The options of a training run (`TrainOptions`, defined once: each field is the train app's
flag of the same name) and the names they choose from. No TensorFlow here: the train app makes its
flags from this module, so `--help` and a bad flag answer before seconds of importing TF."""

import dataclasses

from nk_keras import economies
from nk_keras import options as options_lib
from nk_keras.options import option

# Where each gradient step's points come from (nk_keras/regimes.py).
REGIMES = ("fresh", "cached", "internal", "stepping", "distill")
# How residuals enter the loss: raw (state units); in the economy's natural scale of them
# (`Economy.residual_scale`: with one state its ergodic std); mapped to the policy errors that
# cause them (`Regime.jacobian`); or those errors relative to the policy's own size at one
# ergodic std, the measure the accuracy bar uses.
WEIGHTINGS = ("none", "ergodic", "newton", "relative")
# How the state enters and policies leave the network (nk_keras/network.py).
NORMALIZATIONS = ("ergodic", "ergodic_slope", "ergodic_logslope", "kmr", "centred")
# Where a run's replicas live (nk_keras/distribute.py; the train app's --strategy).
STRATEGIES = ("default", "mirrored", "multi_worker")
OPTIMIZERS = ("soap", "adamw")


@dataclasses.dataclass
class TrainOptions:
  """Every option of a run, and the definition of the train app's flag of the same name.
  Defaults: the shipped models' settings (configs/) but SOAP and a short run, which meet their
  bar in about 3 minutes (see BUILD_NOTES.md for why each was chosen)."""
  regime: str = option("stepping", "Where each gradient step's points come from. An "
                       "economy may set its own defaults for the options not given "
                       "(`Economy.training_defaults`: rank_zlb's shipped recipe).",
                       choices=REGIMES)
  economy: str = option("nk", "The model to solve.", choices=tuple(economies.ECONOMIES))
  agents: int = option(0, "Agents (households) of an economy with a set of them (hank_zlb); "
                       "0: the economy's own number.", lower=0)
  iterations: int = option(5_000, "Draws of points (fresh/cached: gradient steps).", lower=1)
  internal: int = option(5, "Gradient steps per iteration (internal, stepping).", lower=1)
  num_steps: int = option(10, "AR(1) steps of the state between iterations (stepping).",
                          lower=0)
  redraw_every: int = option(1, "Iterations between parameter redraws (stepping).", lower=1)
  pool: int = option(200_000, "Size of the cached pool of points (cached).", lower=1)
  distill_thetas: int = option(4000, "Thetas at which the economy's reference is solved for "
                               "the distill regime.", lower=1)
  batch: int = option(1000, "Points per gradient step, over all replicas (each takes --batch / "
                      "replicas).", lower=1)
  mc: int = option(2, "Antithetic Monte Carlo draws per expectation (even).", lower=2)
  stratified: bool = option(False, "Draw the Monte Carlo shocks in strata of the normal law "
                            "(less noise in expectations of nonlinear residuals).")
  grid: bool = option(False, "Expectations on a randomly shifted grid of --mc nodes per shock "
                      "(with several shocks their product: mc ** shocks per point; weights of "
                      "the normal law) instead of Monte Carlo draws.")
  unbiased: bool = option(False, "Loss from two independent sets of --mc shocks (the product "
                          "of their residuals): no bias from the noise of expectations.")
  state_scale: float = option(1.0, "States drawn with this many times their ergodic std "
                              "(fresh, cached, internal).", lower=0.1)
  level_states: int = option(1, "States per theta in a batch; above 1 the loss also measures "
                             "each theta's persistent level error.", lower=1)
  level_weight: float = option(1.0, "Weight of the level term (--level_states).", lower=0.0)
  phase_in: float = option(0.0, "Share of the gradient steps over which the economy's "
                           "occasionally binding constraint (the ZLB) comes in, from absent to "
                           "whole, linearly (KMR's phase-in); 0: whole from the start.",
                           lower=0.0, upper=1.0)
  optimizer: str = option("soap", "soap: Adam in the eigenbasis of each layer's curvature "
                          "(nk_keras/soap.py), the fast path; adamw: the shipped models' "
                          "optimizer.", choices=OPTIMIZERS)
  precondition_every: int = option(10, "Gradient steps between SOAP's eigenbasis refreshes.",
                                   lower=1)
  lr: float = option(3e-3, "Initial learning rate (cosine decay to --eta_min).", lower=0.0)
  eta_min: float = option(3e-6, "Final learning rate.", lower=0.0)
  weight_decay: float = option(1e-4, "Decoupled weight decay.", lower=0.0)
  clipnorm: float = option(1.0, "Global gradient-norm clip (positive; there is no unclipped "
                           "training).", lower=0.0)
  loss_weights: str = option("", "Weights of the residuals in the loss, name=value,... by "
                             "residual name (nk: Euler, NKPC); 1 for those not named.")
  width: int = option(64, "Units per hidden layer.", lower=1)
  depth: int = option(5, "Hidden layers.", lower=1)
  activation: str = option("tanh", "Keras activation of the hidden layers.")
  normalization: str = option("ergodic_logslope", "How the state enters and policies leave the "
                              "network (nk_keras/network.py).", choices=NORMALIZATIONS)
  weighting: str = option("relative", "How residuals enter the loss (nk_keras/regimes.py).",
                          choices=WEIGHTINGS)
  seed: int = option(0, "Seed of every random draw and of the initial weights.", lower=0)
  init: str = option("", "A finished run's directory whose policy starts this run (same "
                     "economy, normalization and network shape); its run.json is kept in this "
                     "run's record.")
  steps_per_execution: int = option(100, "Gradient steps per compiled call.", lower=1)
  jit_compile: bool = True   # no flag: XLA is the only compiled path measured

  @classmethod
  def for_economy(cls, economy, **given):
    """Options for `economy` (a name) from Python as the train app makes them: `given`, then
    the economy's `training_defaults`, then the defaults here."""
    return with_economy_defaults(cls(economy=economy, **given), given)

  @property
  def gradient_steps(self):
    """Iterations of `fresh`/`cached` are single gradient steps; the others take `internal`."""
    per_iteration = self.internal if self.regime in ("internal", "stepping") else 1
    return self.iterations * per_iteration

  def check(self):
    """A UserError naming the first of `CHECKS` these options fail (bounds are the flags')."""
    return options_lib.check(self, CHECKS)


# Conditions beyond one option's bounds: (options involved, test on their values, message). The
# train app registers them as flag validators; `TrainOptions.check` applies them in Python.
CHECKS = (
    (("mc",), lambda o: o["mc"] % 2 == 0, "--mc must be even (antithetic pairs)"),
    (("clipnorm",), lambda o: o["clipnorm"] > 0, "--clipnorm must be positive: Keras reads 0 "
     "as no clip at all, and an unclipped step is how runs diverge"),
    (("lr", "eta_min"), lambda o: 0 < o["eta_min"] <= o["lr"],
     "--eta_min must be positive and no larger than --lr"),
    (("regime", "pool", "batch"), lambda o: o["regime"] != "cached" or o["pool"] >= o["batch"],
     "--pool must be at least --batch (--regime=cached draws each batch from its pool)"),
    (("level_states", "batch"), lambda o: o["batch"] % o["level_states"] == 0,
     "--level_states must divide --batch (each theta fills whole groups)"),
)


def with_economy_defaults(options, given=()):
  """`options` with the economy's `training_defaults` in every option not named in `given`
  (those set explicitly, e.g. on the command line)."""
  defaults = economies.ECONOMIES[options.economy].training_defaults
  return dataclasses.replace(options, **{k: v for k, v in defaults.items() if k not in given})
