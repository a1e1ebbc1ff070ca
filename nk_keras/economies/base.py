"""The interface every economy implements, so regimes, apps and exports never see the economics.

An economy has states (`[batch, n_state]`, columns in `state_names` order; nk and rank_zlb have
one, the next economies several), shocks (`[..., batch, n_shock]`, columns in `shock_names`
order), a vector of structural parameters `theta` (`[batch, n_params]`, columns in
`param_names` order) and a vector of policies (`[batch, n_policies]`, columns in `policy_names`
order) in the units its residuals and the network work in. What a served model returns
(`output_names`, e.g. levels and a derived interest rate) is `outputs(state, theta, policies)`.

Everything here is dtype-agnostic arithmetic, so the same residuals serve float32 training and
a float64 reference solver (`nk_keras/reference`).
"""

import abc

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from nk_keras.errors import UserError

tfd = tfp.distributions

# Nodes per point a product grid of shocks may have (`Economy.shock_grid`): 64 x 64 for two.
GRID_NODES_MAX = 4096


class Economy(abc.ABC):
  """Parameters, priors, state law of motion and equilibrium residuals of one model."""

  name: str
  param_names: tuple
  state_names: tuple     # one column of a state tensor `[batch, n_state]` each
  # The states whose law of motion reads today's policies (e.g. last period's interest rate);
  # with none, the state can be stepped without the policy and a policy is called once on
  # today's and tomorrow's points together.
  endogenous_states = ()
  shock_names: tuple     # one column of an innovation tensor `[..., batch, n_shock]` each
  # A set of `n_agents` agents (households) whose order carries no meaning, each with the states
  # `agent_states` and the policies `agent_policies`. Flat tensors hold the aggregate columns
  # first, then the agents one after another: a state `[batch, n_state]` is the aggregate
  # `[batch, n_aggregate_states]` and the agents `[batch, n_agents, len(agent_states)]`
  # (`split_agents`), and `state_names` ends with `b_0, e_0, b_1, ...` for agent states b, e.
  n_agents = 0
  agent_states = ()
  agent_policies = ()
  agent_residuals = ()   # each agent's conditions; their columns follow the aggregate ones
  agent_outputs = ()     # served outputs `[n, n_agents]` (each agent's)
  policy_names: tuple
  residual_names: tuple   # one equilibrium condition per policy
  box_low: np.ndarray    # [n_params]
  box_high: np.ndarray   # [n_params]
  calibration: np.ndarray  # [n_params]
  fixed = {}             # calibrated parameters that are not in theta: name -> value
  labels = {}            # figure labels of names (parameters, states, policies); else the name
  # Sign of each policy's response to each state, `[n_state][n_policies]`, where it is known to
  # hold over the whole box (an economic property, e.g. a demand shock raises output); None where
  # it is not. It lets the network learn the log of that response ("ergodic_logslope").
  response_signs = None
  # Where an equilibrium exists, if not the whole box: the coefficients of the quadratic
  # `domain_score`, fitted to time-iteration labels of uniform draws of the box and shifted so
  # that none without an equilibrium is inside (docs/existence/analyse_labels.py); with it, the
  # economy gives `domain_reason`.
  domain_rule = None
  # How a policy error is assumed to carry over to tomorrow when residuals are mapped to the
  # policy errors that cause them (`Regime.jacobian`): "proportional" to the state (a slope
  # error: right for a policy linear in the state; one state only), a "level" shift, or "today"
  # alone.
  error_shape = "proportional"
  # The accuracy metric's states, in ergodic std, and the state of the calibration check point
  # (the metric is defined along one state: `require_one_state`).
  accuracy_levels = (-2.0, -1.0, 0.0, 1.0, 2.0)
  calibration_state = 0.01
  eval_theta = 20_000   # theta draws of the accuracy report by default
  # An estimation's sizes by default: KMR's for their NK model (100 periods of synthetic data,
  # 10,000 likelihood draws for the surrogate).
  estimation_sizes = {"periods": 100, "draws": 10_000, "refine": 0.0}
  # Training options where this economy's shipped recipe differs from `training.TrainOptions`'
  # defaults (nk's): what a bare `--economy=NAME` trains (`training.with_economy_defaults`).
  training_defaults = {}
  # Whether `scales` solves a perturbation (the default): costly enough that a training step
  # computes it once per theta, not on every call of the network.
  perturbation_scales = True
  # Names from `network.NORMALIZATIONS` and `regimes.WEIGHTINGS` this economy supports.
  normalizations = ("ergodic", "ergodic_slope", "ergodic_logslope", "kmr")
  weightings = ("none", "ergodic", "newton", "relative")

  def __init__(self, prior=None):
    """`prior`: a `tfd.Distribution` with event shape `[n_params]` used for training draws and
    estimation; None gives the economy's own (`default_prior`; training then draws uniformly on
    the box where an equilibrium exists)."""
    self.prior = prior if prior is not None else self.default_prior()
    self.training_prior = prior if prior is not None else self.uniform_prior()

  @property
  def n_params(self):
    return len(self.param_names)

  @property
  def n_state(self):
    return len(self.state_names)

  @property
  def n_shock(self):
    return len(self.shock_names)

  @property
  def n_aggregate_states(self):
    return self.n_state - self.n_agents * len(self.agent_states)

  @property
  def n_aggregate_policies(self):
    return len(self.policy_names) - self.n_agents * len(self.agent_policies)

  def groups(self, kind):
    """The columns of a `[..., n_policies]` (`kind` "policies") or `[..., n_residuals]`
    ("residuals") tensor that reports and logs pool: `[(name, [column, ...])]`, each aggregate
    name alone, each agent name over every agent."""
    names, per_agent = ((self.policy_names, self.agent_policies) if kind == "policies" else
                        (self.residual_names, self.agent_residuals))
    k, d = len(names) - self.n_agents * len(per_agent), len(per_agent)
    return ([(name, [j]) for j, name in enumerate(names[:k])]
            + [(name, list(range(k + j, len(names), d))) for j, name in enumerate(per_agent)])

  def split_agents(self, x, n_aggregate):
    """A flat `[..., n_aggregate + n_agents * d]` tensor -> its aggregate columns
    `[..., n_aggregate]` and its agents `[..., n_agents, d]` (None without agents)."""
    if not self.n_agents:
      return x[..., :n_aggregate], None
    shape = tf.shape(x)[:-1]
    agents = tf.reshape(x[..., n_aggregate:], tf.concat([shape, [self.n_agents, -1]], 0))
    return x[..., :n_aggregate], agents

  def served_inputs(self):
    """The state inputs of a served policy: (name, per-row shape) pairs, `()` for an aggregate
    state and `(n_agents,)` for each agent state; the flat state is `join_served`'s."""
    return ([(name, ()) for name in self.state_names[:self.n_aggregate_states]]
            + [(name, (self.n_agents,)) for name in self.agent_states])

  def join_served(self, inputs):
    """The flat state `[n, n_state]` from the served inputs `[n]` / `[n, n_agents]` in
    `served_inputs` order."""
    k = self.n_aggregate_states
    state = tf.stack(inputs[:k], axis=1)
    if not self.n_agents:
      return state
    agents = tf.stack(inputs[k:], axis=2)                              # [n, n_agents, d]
    return tf.concat([state, tf.reshape(agents, [tf.shape(agents)[0], -1])], axis=1)

  def settings(self):
    """What `economies.get` needs besides the name to make this economy again (JSON-ready):
    the number of agents where there is a set of them."""
    return {"agents": self.n_agents} if self.n_agents else {}

  def require_one_state(self, what):
    """Raises a UserError naming `what` (a metric, a figure) unless the economy has one state:
    for the code that is defined along one state."""
    if self.n_state != 1:
      raise UserError(f"{what} is defined for economies with one state; economy {self.name!r} "
                      f"has {self.n_state} ({', '.join(self.state_names)})")

  @property
  def output_names(self):
    return tuple(self.outputs(tf.zeros([1, self.n_state]),
                              tf.constant(self.calibration[None], tf.float32),
                              tf.zeros([1, len(self.policy_names)])))

  def default_prior(self):
    return self.uniform_prior()

  def uniform_prior(self):
    return tfd.Independent(
        tfd.Uniform(low=tf.constant(self.box_low, tf.float32),
                    high=tf.constant(self.box_high, tf.float32)),
        reinterpreted_batch_ndims=1)

  def unpack(self, theta):
    """`theta` `[..., n_params]` -> dict of name -> `[...]`."""
    return {name: theta[..., i] for i, name in enumerate(self.param_names)}

  def theta_from(self, values):
    """Calibration with some entries replaced: dict name -> float, returns float32 `[n_params]`."""
    unknown = set(values) - set(self.param_names)
    if unknown:
      raise UserError(f"unknown parameter(s) {sorted(unknown)}; "
                      f"known: {', '.join(self.param_names)}")
    theta = self.calibration.astype(np.float32).copy()
    for name, value in values.items():
      theta[self.param_names.index(name)] = value
    return theta

  def outside_box(self, theta):
    """Names of the parameters of `theta` `[..., n_params]` (NumPy) outside the box or non-finite."""
    theta = np.asarray(theta, np.float64).reshape(-1, self.n_params)
    bad = ~np.isfinite(theta) | (theta < self.box_low - 1e-6) | (theta > self.box_high + 1e-6)
    return [name for i, name in enumerate(self.param_names) if bad[:, i].any()]

  def in_domain(self, theta):
    """Whether an equilibrium is known to exist at each `theta` `[batch, n_params]`: bool
    `[batch]`. The box is the domain unless the economy gives an existence rule."""
    if self.domain_rule is None:
      return tf.ones(tf.shape(theta)[:1], tf.bool)
    return self.domain_score(theta) < 0

  def domain_score(self, theta):
    """The existence rule's score `[batch]` (negative inside) at `theta` `[batch, n_params]`:
    `domain_rule . [1, u, u_i u_j (i <= j)]` with `u = (theta - box_low) / (box_high - box_low)
    - 1/2`, the quadratic of docs/existence/analyse_labels.py."""
    const = lambda a: tf.constant(a, theta.dtype)
    u = (theta - const(self.box_low)) / const(self.box_high - self.box_low) - 0.5
    i, j = np.triu_indices(self.n_params)
    features = tf.concat([tf.ones_like(u[:, :1]), u,
                          tf.gather(u, i, axis=1) * tf.gather(u, j, axis=1)], axis=1)
    return tf.linalg.matvec(features, const(self.domain_rule))

  def domain_reason(self):
    """One sentence on what `in_domain` excludes, for error messages; None if it excludes
    nothing."""
    return None

  def draw_theta(self, n, seed):
    """`n` parameter vectors `[n, n_params]` from the training prior, inside the domain;
    `seed` is a stateless `[2]` seed."""
    return self.sample_inside(self.training_prior, n, seed)

  def sample_inside(self, distribution, n, seed):
    """`n` draws `[n, n_params]` of `distribution` inside the domain, by rejection with a fixed
    shape (XLA): draw max(4n, n + 128), keep the first n inside. With rank_zlb_inertia's
    acceptance rate on the box (0.46, rank_zlb's 0.82), fewer than n accepted has probability
    below 1e-8 at any n (binomial tail; worst near n = 43)."""
    if self.domain_reason() is None:
      return distribution.sample(n, seed=seed)
    candidates = distribution.sample(max(4 * n, n + 128), seed=seed)
    order = tf.argsort(tf.cast(~self.in_domain(candidates), tf.int32), stable=True)
    return tf.gather(candidates, order[:n])

  def draw_state(self, theta, seed):
    """Draws `[batch, n_state]` from the states' ergodic law, one per row of `theta`: by default
    the first-order perturbation's normal law (`linear`), correlated across states, around the
    steady state."""
    z = tf.random.stateless_normal(tf.stack([tf.shape(theta)[0], self.n_state]), seed=seed,
                                   dtype=theta.dtype)
    return self.ergodic_state(theta, z)

  def ergodic_state(self, theta, z):
    """States `[batch, n_state]` from standard normals `z` `[batch, n_state]`: the ergodic law
    of `draw_state` as a map (the particle filter shares its normals across thetas)."""
    linear = self.linear(theta)
    return linear.state + tf.linalg.matvec(tf.linalg.cholesky(linear.covariance), z)

  def draw_shocks(self, mc, batch, seed, stratified=False):
    """Antithetic standard-normal innovations `[mc, batch, n_shock]`: rows k and k + mc/2 are
    negatives.

    `stratified`: row k < mc/2 is drawn within the k-th of mc/2 equiprobable strata of the
    normal law (one uniform per point and shock shared by the strata), which leaves
    expectations unbiased and cuts their noise for a nonlinear integrand far below plain
    draws' 1/mc. (With several shocks the strata are per shock: the joint draws are not
    stratified in the product space.)
    """
    # Drawn as `[., batch * n_shock]` and reshaped at the end (see `draw_state`).
    flat = batch * self.n_shock
    if not stratified:
      half = tfd.Normal(0.0, 1.0).sample([mc // 2, flat], seed=seed)
    else:
      u = tf.random.stateless_uniform([1, flat], seed=seed, minval=1e-6, maxval=1 - 1e-6)
      k = tf.range(mc // 2, dtype=tf.float32)[:, None]
      half = tf.math.ndtri((k + u) / (mc // 2))
    return tf.reshape(tf.concat([half, -half], axis=0), [mc, batch, self.n_shock])

  def shock_grid(self, n, batch, seed, span=5.0):
    """A randomly shifted trapezoid grid of the standard normal law, per point: `n` nodes per
    shock on +-`span` spaced `h = 2 span / n`, each shock's shifted by its own uniform per point,
    and with several shocks their product: innovations `[n ** n_shock, batch, n_shock]` and
    weights `[n ** n_shock, batch]` (the product of `phi(eps) h`).

    Over the shift, the weighted sum's mean is the expectation on +-`span` (the law's mass
    beyond is 6e-7 at 5); for a smooth integrand any one shift is already exact to
    ~exp(-2 pi^2 / h^2) and the mass beyond +-(span - h/2) (2e-6 for 12 nodes), and a kink
    leaves an O(h^2) error that the shift makes zero-mean: at 12 nodes E[max(eps, 0)] has std
    0.011 over shifts, 12 Monte Carlo draws 0.17 (tests/test_level_and_grid.py). A product
    grid is for a few shocks: an agent set's idiosyncratic shocks would need n ** 51 nodes."""
    nodes = n ** self.n_shock
    if nodes > GRID_NODES_MAX:
      raise UserError(f"grid expectations need {n} ** {self.n_shock} = {nodes:,} nodes per point "
                      f"for economy {self.name!r} ({self.n_shock} shocks; at most "
                      f"{GRID_NODES_MAX:,}): use Monte Carlo draws (no --grid) or fewer nodes")
    h = 2.0 * span / n
    u = tf.random.stateless_uniform([self.n_shock, batch], seed=seed)
    # Node j's index along each shock: the product grid's rows, the first shock slowest.
    index = np.stack(np.meshgrid(*[np.arange(n)] * self.n_shock, indexing="ij"), -1)
    index = index.reshape(nodes, self.n_shock).astype(np.float32)
    eps, weights = [], 1.0
    for i in range(self.n_shock):     # shock by shock: one shock's graph is that of before
      e = -span + (tf.constant(index[:, i])[:, None] + u[i:i + 1]) * h           # [nodes, batch]
      eps.append(e)
      weights *= h * tf.exp(-0.5 * tf.square(e)) / np.sqrt(2 * np.pi).astype(np.float32)
    return tf.stack(eps, axis=-1), weights

  @staticmethod
  def expect(x, weights=None):
    """E over the leading (shock) axis of `x` `[k, batch, ...]`: a plain mean of Monte Carlo
    draws, the `weights` `[k]` of quadrature nodes, or per-point weights `[k, batch]` (the same
    for every agent of a point)."""
    if weights is None:
      return tf.reduce_mean(x, axis=0)
    weights = tf.cast(weights, x.dtype)
    if weights.shape.rank == 1:
      return tf.tensordot(weights, x, axes=1)
    while weights.shape.rank < x.shape.rank:          # per point, over an agent axis too
      weights = weights[..., None]
    return tf.reduce_sum(weights * x, axis=0)

  def linear(self, theta):
    """The first-order perturbation at each row of `theta` (`perturbation.Linear`): steady
    state, linear policy, the states' linear law and ergodic covariance.

    Solved once per `theta` tensor: a training step asks for the scales of one batch of thetas
    in several places (normalisation, weighting, draws), and each copy of the solver in the
    graph costs XLA compile time."""
    from nk_keras import perturbation
    theta = tf.convert_to_tensor(theta)
    cache = self.__dict__.setdefault("_linear", {})
    key = theta.ref()
    if key not in cache:
      if len(cache) >= 8:   # the few tensors of one step; older graphs' entries are dead
        cache.clear()
      # In float64 whatever the caller's dtype: its central differences then leave no trace of
      # round-off, so a served graph gives the same scales in any runtime (ONNX included).
      linear = perturbation.linearise(self, tf.cast(theta, tf.float64))
      cache[key] = perturbation.Linear(*(tf.cast(x, theta.dtype) for x in linear))
    return cache[key]

  def ergodic_std(self, theta):
    """Ergodic standard deviation of each state, `[batch, n_state]`: the states' natural scales
    (the network's input normalisation). By default the first-order perturbation's."""
    return tf.sqrt(tf.linalg.diag_part(self.linear(theta).covariance))

  def scales(self, theta):
    """`(ergodic_std [batch, n_state], policy_scale [batch, n_policies])`, what the network's
    normalisation needs, from one perturbation."""
    linear = self.linear(theta)
    return tf.sqrt(tf.linalg.diag_part(linear.covariance)), linear_policy_std(linear)

  def state_mean(self, theta):
    """Centre of the states' ergodic law `[batch, n_state]` (the steady state by default); None
    where it is zero for every theta."""
    return self.linear(theta).state

  def policy_guess(self, state, theta):
    """Policies `[batch, n_policies]` the "centred" network's outputs are added to: zeros (for
    policies in deviations from a steady state) unless the economy knows a better start, e.g.
    a heterogeneous-agent steady state's savings."""
    return tf.zeros(tf.stack([tf.shape(state)[0], len(self.policy_names)]), state.dtype)

  def residual_scale(self, theta):
    """One natural size `[batch]` of the residuals: the "ergodic" weightings divide residuals by
    it. By default the root mean square of the policies' scales (residuals in policy units)."""
    return tf.sqrt(tf.reduce_mean(tf.square(self.policy_scale(theta)), axis=1))

  @abc.abstractmethod
  def step(self, state, theta, eps, today):
    """Next period's state. `state` `[batch, n_state]`, `theta` `[batch, n_params]`, `eps`
    `[..., batch, n_shock]`, `today` `[batch, n_policies]` the policies at `state` (None for an
    economy without `endogenous_states`) -> `[..., batch, n_state]` (one next state per
    innovation)."""

  def next_state(self, policy, state, theta, eps):
    """`step` from `state` `[batch, n_state]`, calling `policy` for today's policies only where
    an endogenous state needs them."""
    today = policy(state, theta) if self.endogenous_states else None
    return self.step(state, theta, eps, today)

  @abc.abstractmethod
  def equilibrium(self, state, theta, eps, today, tomorrow, weights=None):
    """Equilibrium-condition residuals `[batch, n_residuals]` (one per policy), in state units.

    Pure arithmetic: `state` `[batch, n_state]`, `today` `[batch, n_policies]` are the policies
    at `state`, `tomorrow` `[k, batch, n_policies]` those at `step(state, theta, eps)` for the
    `k` innovations `eps` `[k, batch, n_shock]`; expectations are `expect(., weights)` over the
    `k` axis.
    """

  def outputs(self, state, theta, policies):
    """What a served model returns: dict name -> `[batch]` for `state` `[batch, n_state]`; by
    default the policies."""
    return {name: policies[:, j] for j, name in enumerate(self.policy_names)}

  def policies_from_outputs(self, outputs):
    """Inverse of `outputs`: dict name -> `[batch]` -> policies `[batch, n_policies]`."""
    return tf.stack([outputs[name] for name in self.policy_names], axis=1)

  # A registered economy with the same parameters and a reference, whose aggregates this one's
  # extend (hank_zlb's: rank_zlb, its representative-agent version): `simulate` draws its GIRFs
  # beside this one's, on the same shocks. None for none.
  counterpart = None
  # An occasionally binding constraint, by name (e.g. "ZLB"), where `constraint_slack` is
  # negative; None for none. The apps then report how often and how long it binds, shade it in
  # figures and split errors by whether it binds.
  constraint = None
  # How much of the constraint's bite is left out: 0 (the model) to 1 (no constraint). A training
  # run's --phase_in makes it a variable that falls from 1 to 0 (KMR's phase-in of the ZLB): the
  # network first meets the unconstrained model's one steady state, where a residual loss alone
  # is as content with the ZLB's second, deflationary one.
  relaxation = 0.0
  # How figures show values in model units: name -> (factor, offset, unit label), shown as
  # factor * (value + offset); names not listed are shown as 100 x the value (percent).
  display_units = {}
  # Parameter values (name -> value; the rest at the calibration) worth a row of the policy
  # figures beside the calibration, e.g. thetas where the constraint binds often.
  showcase = ()

  def constraint_slack(self, state, theta, policies):
    """How far from binding the constraint is, `[...]` for `state` `[..., n_state]`, `theta`
    `[..., n_params]` and `policies` `[..., n_pol]` (negative where it binds; linear in the
    policies between grid points is what the references' exact frequencies assume)."""
    raise NotImplementedError(f"economy {self.name!r} declares no occasionally binding "
                              f"constraint")

  def floor(self, slack):
    """`slack` `[...]` floored at zero by the constraint (the ZLB on a log rate), the part below
    zero kept in the share `relaxation`."""
    return (tf.maximum(slack, 0.0)
            + tf.cast(self.relaxation, slack.dtype) * tf.minimum(slack, 0.0))

  def display(self, name, values, difference=False):
    """`values` (model units) in figure units: `display_units`, or percent; `difference`: a
    change, so no offset."""
    factor, offset, _ = self.display_units.get(name, (100.0, 0.0, None))
    return factor * (np.asarray(values) + (0.0 if difference else offset))

  def display_unit(self, name):
    """The axis label of `name`'s figure units."""
    return self.display_units.get(name, (100.0, 0.0, f"100 x {name} (%)"))[2]

  # What an estimation observes (`observe`): the economy's own series (by default its policies),
  # whether they need last period's policies (a growth rate does), and the units a data file
  # holds them in (for error messages).
  observables = None
  observes_previous = False
  observable_units = "model units (log deviations: 0.01 is 1 %)"

  def observable_names(self, observe_state=False):
    """The series of an estimation's data, in `observe`'s order: the economy's `observables`,
    then, if `observe_state`, the states (KMR's NK code observes zeta)."""
    own = tuple(self.observables or self.policy_names)
    return own + (tuple(self.state_names) if observe_state else ())

  def measure(self, state, theta, policies, previous):
    """The economy's own observables without measurement error: dict name -> `[...]` from
    `state` `[..., n_state]`, `theta` `[..., n_params]`, this period's `policies`
    `[..., n_pol]` and last period's `previous` = (state, policies) (same shapes; used only if
    `observes_previous`). By default the policies."""
    return {name: policies[..., j] for j, name in enumerate(self.policy_names)}

  def observe(self, names, state, theta, policies, previous=None):
    """The observables `names` (of `observable_names(True)`) `[..., n_obs]` at `state`
    `[..., n_state]`: the states themselves or `measure`'s series. Tensors or NumPy arrays
    (returns a tensor)."""
    if self.observes_previous and previous is None:
      raise ValueError(f"economy {self.name!r} observes a change: last period's state and "
                       f"policies needed")
    series = self.measure(state, theta, policies, previous)
    return tf.stack([state[..., self.state_names.index(n)] if n in self.state_names
                     else series[n] for n in names], axis=-1)

  def policy_scale(self, theta):
    """Natural size of each policy's fluctuations, `[batch, n_policies]`, that the network's
    outputs are multiplied by: by default the ergodic std of the first-order policy."""
    return linear_policy_std(self.linear(theta))

  def relative_size(self, policy, theta, std):
    """Size of each policy's response at one ergodic std, in units of `std` (`residual_scale`
    `[batch]`), `[batch, n_policies]`, that the "relative" weighting divides errors by: by
    default the policies' own scales."""
    return self.policy_scale(theta) / std[:, None]

  def policies(self, policy, state, theta, eps):
    """Policies today `[batch, n_pol]` and tomorrow `[mc, batch, n_pol]` from one network call.

    `policy(state [n, n_state], theta [n, n_params]) -> [n, n_policies]`; `state` is
    `[batch, n_state]`, `eps` `[mc, batch, n_shock]`.
    """
    mc, batch = tf.shape(eps)[0], tf.shape(eps)[1]
    if self.endogenous_states:
      # Tomorrow's states depend on today's policies: two calls, and the gradient flows through
      # both (the equilibrium's own dependence of tomorrow on today).
      today = policy(state, theta)
      state_next = self.step(state, theta, eps, today)              # [mc, batch, n_state]
      out = policy(tf.reshape(state_next, [-1, self.n_state]), tf.tile(theta, tf.stack([mc, 1])))
      return today, tf.reshape(out, tf.stack([mc, batch, tf.shape(out)[1]]))
    state_next = self.step(state, theta, eps, None)                 # [mc, batch, n_state]
    points = tf.concat([state, tf.reshape(state_next, [-1, self.n_state])],
                       axis=0)                                      # [(1+mc)*batch, n_state]
    thetas = tf.tile(theta, tf.stack([1 + mc, 1]))                            # rows follow points
    out = policy(points, thetas)                                              # [(1+mc)*batch, n_pol]
    tomorrow = tf.reshape(out[batch:], tf.stack([mc, batch, tf.shape(out)[1]]))
    return out[:batch], tomorrow

  def residuals(self, policy, state, theta, eps):
    """`equilibrium` residuals `[batch, n_residuals]` of `policy` at (`state`, `theta`)."""
    today, tomorrow = self.policies(policy, state, theta, eps)
    return self.equilibrium(state, theta, eps, today, tomorrow)

  def closed_form(self, state, theta):
    """Exact policies `[batch, n_policies]` at `state` `[batch, n_state]`, or None where the
    economy has no closed form."""
    return None

  def reference(self, theta, progress=False):
    """The economy's reference solution at `theta` `[n, n_params]` (NumPy): a
    `nk_keras.reference.Reference` (closed form or time iteration) that accuracy is measured
    against."""
    from nk_keras.reference import ClosedFormReference
    if not self.has_closed_form():
      raise NotImplementedError(f"economy {self.name!r} has no reference solution")
    return ClosedFormReference(self, theta)

  def training_reference(self, theta, progress=False):
    """The reference the `distill` regime fits at `theta` `[n, n_params]` (NumPy): by default
    the accuracy reference itself; an economy may give a cheaper one it has measured to be
    accurate enough."""
    return self.reference(theta, progress=progress)

  def has_reference(self):
    """Whether the economy offers a reference solution (`reference`): a closed form, or a
    solver of its own."""
    return self.has_closed_form() or type(self).reference is not Economy.reference

  def has_closed_form(self):
    return self.closed_form(tf.zeros([1, self.n_state]),
                            tf.constant(self.calibration[None], tf.float32)) is not None

  def accuracy_extras(self, policy):
    """Economy-specific accuracy statistics of `policy` (JSON-ready dict merged into the
    accuracy report); none by default."""
    return {}

  def state_space(self, theta):
    """Linear-Gaussian state-space form of the solution, for an exact (Kalman) likelihood.

    Returns a dict of tensors for `theta` `[n, n_params]`: `transition` `[n, n_state,
    n_state]`, `innovation_std` `[n, n_state]`, `loadings` `[n, n_policies, n_state]`
    (policies = loadings @ state) and `initial_std` `[n, n_state]` (the ergodic std; the
    filters' states are independent at the start). Economies without a linear closed form (a
    zero lower bound, say) raise NotImplementedError; particle filter, surrogate and MCMC
    do not need it.
    """
    raise NotImplementedError(f"economy {self.name!r} has no linear state-space form")


def linear_policy_std(linear):
  """Ergodic std `[batch, n_policies]` of the first-order policy of a `perturbation.Linear`."""
  return tf.sqrt(tf.einsum("bps,bst,bpt->bp", linear.slopes, linear.covariance, linear.slopes))


class IndependentStates(Economy):
  """An economy whose states are independent, exogenous AR(1)s with a closed-form ergodic std
  (`ergodic_std` is abstract here): states are drawn as independent normals around zero, and
  with one state that std is the residuals' and the policies' scale."""

  perturbation_scales = False

  def scales(self, theta):
    return self.ergodic_std(theta), self.policy_scale(theta)

  @abc.abstractmethod
  def ergodic_std(self, theta):
    """Ergodic standard deviation of each state, `[batch, n_state]`."""

  def state_mean(self, theta):
    return None

  def ergodic_state(self, theta, z):
    return self.ergodic_std(theta) * z

  def draw_state(self, theta, seed):
    batch = tf.shape(theta)[0]
    # Drawn and scaled flat, then reshaped: the numbers of a `[batch, n_state]` draw, and for one
    # state exactly the graph of the `[batch]` draws states had before. XLA fuses the draw into
    # its consumers, and a `[batch, 1]` graph compiles to code that rounds differently: short
    # `fresh` runs would no longer give bitwise the same weights (BUILD_NOTES, "Design").
    eps = tf.random.stateless_normal(tf.reshape(batch * self.n_state, [1]), seed=seed)
    std = tf.reshape(self.ergodic_std(theta), [-1])
    return tf.reshape(std * eps, tf.stack([batch, self.n_state]))

  def residual_scale(self, theta):
    """With one state its ergodic std; an economy with several states says which scale its
    residuals have."""
    if self.n_state != 1:
      raise NotImplementedError(f"economy {self.name!r} has {self.n_state} states and must "
                                f"define residual_scale")
    return self.ergodic_std(theta)[:, 0]

  def policy_scale(self, theta):
    std = self.residual_scale(theta)
    return tf.stack([std] * len(self.policy_names), axis=1)

  def relative_size(self, policy, theta, std):
    """By default the network's own response (no solution needed), |policy(std)| / std: one
    state only."""
    if self.n_state != 1:
      raise UserError(f"the 'relative' weighting needs economy {self.name!r} (several states) "
                      f"to define relative_size")
    return tf.abs(policy(std[:, None], theta)) / std[:, None]
