"""The extended policy network: (state, theta) -> policies, for every theta in the box.

`build_net` makes a plain Keras MLP on normalised inputs (savable as `.keras` with no custom
objects); `ExtendedPolicy` wraps it with the economy-aware input normalisation and output scaling,
so training, evaluation and export all call the same function.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from nk_keras import economies
from nk_keras.errors import UserError
from nk_keras.train_options import NORMALIZATIONS

# How the states enter and the policies leave the network (every state `[n, n_state]` column by
# column):
# - "ergodic": state / (3 * ergodic_std(theta)) in, outputs * policy_scale(theta) out (the
#   economy's natural size of each policy, by default the state's ergodic std). The state's
#   ergodic scale varies ~20x across the box; measuring it in its own ergodic units gives every
#   theta the same input range and the same output scale.
# - "kmr": KMR's reference: the state taken as is (min-max on [-1, 1]), outputs / 100.
# - "ergodic_slope": as "ergodic", with the network giving a level and a slope per state,
#   policy = scale * (level + sum_i z_i * slope_i) with z = state / std, all functions of
#   (z, theta): outputs `[n, (1 + n_state) * n_pol]`, the levels then each state's slopes. Any
#   policy can be written so; a policy close to linear in the state (perturbation's first order)
#   then needs no product of z and theta to be built from the activations.
# - "ergodic_logslope": as "ergodic_slope", with the slope's log: slope = sign * exp(output), for
#   economies that know the sign of each policy's response to each state
#   (`Economy.response_signs`, `[n_state][n_pol]`). The
#   response spans ~200x across the box and accuracy is asked relative to it: in logs that is
#   the same absolute precision everywhere, which a linear read-out delivers far more easily.
# - "centred": as "ergodic" with the states' ergodic means taken off first (states in levels,
#   e.g. a household's bonds), and the economy's `policy_guess(state, theta)` (e.g. a steady
#   state's policy) added to the scaled outputs: the network learns the departure from it.
ERGODIC_SPAN = 3.0


def check_activation(name):
  """A UserError unless `name` is a Keras activation (Keras' own message lists nothing; an
  --activation typo is the usual cause)."""
  try:
    keras.activations.get(name)
  except ValueError:
    raise UserError(f"unknown activation {name!r}: not a Keras activation name (e.g. "
                    f"tanh, celu, relu)") from None


def build_net(n_inputs, n_outputs, width=64, depth=5, activation="celu", seed=0):
  """MLP `[n, n_inputs] -> [n, n_outputs]` with `depth` hidden layers of `width` units."""
  check_activation(activation)
  init = lambda i: keras.initializers.GlorotUniform(seed=seed + i)
  inputs = keras.Input((n_inputs,), name="normalized_inputs")
  h = inputs
  for i in range(depth):
    h = keras.layers.Dense(width, activation=activation, kernel_initializer=init(i),
                           name=f"hidden_{i}")(h)
  outputs = keras.layers.Dense(n_outputs, kernel_initializer=init(depth), name="policies")(h)
  return keras.Model(inputs, outputs, name="policy_net")


def build_set_net(n_aggregate, n_agents, n_agent, n_aggregate_outputs, n_agent_outputs,
                  width=64, depth=5, activation="celu", seed=0):
  """A network for an economy with a set of agents, invariant to their order: inputs
  `[n, n_aggregate]` (aggregate states and parameters) and `[n, n_agents, n_agent]` (each agent's
  states), outputs `[n, n_aggregate_outputs + n_agents * n_agent_outputs]` (the aggregate
  policies, then each agent's). Every agent's own states and the aggregate inputs go through a
  shared encoder (2 layers); the mean of its features over agents summarises the distribution;
  an aggregate head reads (aggregate, summary) and a shared agent head (own, aggregate,
  summary), each `depth - 2` hidden layers. Only stock Keras layers: saved and loaded as `.keras`
  like `build_net`'s."""
  check_activation(activation)
  layers = keras.layers
  count = iter(range(10_000))
  dense = lambda units, name, act=activation: layers.Dense(
      units, activation=act, name=name,
      kernel_initializer=keras.initializers.GlorotUniform(seed=seed + next(count)))
  aggregate = keras.Input((n_aggregate,), name="aggregate_inputs")
  agents = keras.Input((n_agents, n_agent), name="agent_inputs")
  own = layers.Concatenate(name="own")([agents, layers.RepeatVector(n_agents)(aggregate)])
  h = own
  for i in range(2):
    h = dense(width, f"encoder_{i}")(h)                                # [n, L, width]
  summary = layers.GlobalAveragePooling1D(name="summary")(h)           # [n, width]
  a = layers.Concatenate()([aggregate, summary])
  g = layers.Concatenate()([own, layers.RepeatVector(n_agents)(summary)])
  for i in range(max(depth - 2, 1)):
    a = dense(width, f"aggregate_{i}")(a)
    g = dense(width, f"agent_{i}")(g)
  a = dense(n_aggregate_outputs, "aggregate_policies", None)(a)
  g = layers.Reshape((n_agents * n_agent_outputs,))(dense(n_agent_outputs, "agent_policies", None)(g))
  return keras.Model([aggregate, agents], layers.Concatenate(name="policies")([a, g]),
                     name="set_policy_net")


class ExtendedPolicy:
  """`policy(state [n, n_state], theta [n, n_params]) -> [n, n_policies]` in the model's units."""

  def __init__(self, economy, net, normalization=None):
    normalization = normalization or economy.normalizations[0]
    if normalization not in NORMALIZATIONS:
      raise UserError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization not in economy.normalizations:
      raise UserError(f"normalization {normalization!r} is not supported by economy "
                      f"{economy.name!r} (supported: {', '.join(economy.normalizations)})")
    if normalization == "ergodic_logslope" and economy.response_signs is None:
      raise UserError(f"normalization 'ergodic_logslope' needs the signs of the policies' "
                      f"response to the state, which economy {economy.name!r} does not give")
    if normalization == "ergodic_logslope" and np.shape(economy.response_signs) != (
        economy.n_state, len(economy.policy_names)):
      raise UserError(f"economy {economy.name!r}: response_signs must be [n_state][n_policies] "
                      f"= [{economy.n_state}][{len(economy.policy_names)}], got shape "
                      f"{list(np.shape(economy.response_signs))}")
    self.economy, self.net, self.normalization = economy, net, normalization
    self._low = tf.constant(economy.box_low, tf.float32)
    self._span = tf.constant(economy.box_high - economy.box_low, tf.float32)

  @classmethod
  def create(cls, economy, normalization=None, seed=0, **net_kwargs):
    """A new policy; `normalization` by default the economy's first."""
    normalization = normalization or economy.normalizations[0]
    if economy.n_agents:
      if normalization.endswith("slope"):
        raise UserError(f"normalization {normalization!r} has a slope per state: not for "
                        f"economy {economy.name!r}'s set of agents")
      net = build_set_net(economy.n_aggregate_states + economy.n_params, economy.n_agents,
                          len(economy.agent_states), economy.n_aggregate_policies,
                          len(economy.agent_policies), seed=seed, **net_kwargs)
      return cls(economy, net, normalization)
    per_policy = 1 + economy.n_state if normalization.endswith("slope") else 1
    net = build_net(economy.n_state + economy.n_params, per_policy * len(economy.policy_names),
                    seed=seed, **net_kwargs)
    return cls(economy, net, normalization)

  def __call__(self, state, theta, scales=None):
    """`scales`: the economy's `scales(theta)` if already computed (`at`)."""
    theta_in = 2.0 * (theta - self._low) / self._span - 1.0            # [n, n_params]
    if self.normalization == "kmr":
      out = self.net(tf.concat([state, theta_in], axis=1))
      return out * 0.01
    # [n, n_state], [n, n_policies]
    std, scale = self.economy.scales(theta) if scales is None else scales
    if self.normalization == "centred":
      mean = self.economy.state_mean(theta)
      z = (state if mean is None else state - mean) / (ERGODIC_SPAN * std)
      return self.economy.policy_guess(state, theta) + self.network(z, theta_in) * scale
    out = self.network(state / (ERGODIC_SPAN * std), theta_in)
    if self.normalization.endswith("slope"):
      level, *slopes = tf.split(out, 1 + self.economy.n_state, axis=1)  # [n, n_policies] each
      z = state / std                                                  # [n, n_state]
      out = level
      for i, slope in enumerate(slopes):
        if self.normalization == "ergodic_logslope":
          slope = tf.constant(self.economy.response_signs[i], out.dtype) * tf.exp(slope)
        out = out + z[:, i:i + 1] * slope
    return out * scale

  def network(self, z, theta_in):
    """The net at normalised states `z` `[n, n_state]` and parameters `[n, n_params]`."""
    if not self.economy.n_agents:
      return self.net(tf.concat([z, theta_in], axis=1))
    aggregate, agents = self.economy.split_agents(z, self.economy.n_aggregate_states)
    return self.net([tf.concat([aggregate, theta_in], axis=1), agents])

  def at(self, theta):
    """This policy for calls whose rows tile `theta` `[batch, n_params]` (row i at theta
    i mod batch, as `Economy.policies` lays them out), the economy's scales computed once for
    `theta`; itself where the scales cost nothing."""
    if self.normalization == "kmr" or not self.economy.perturbation_scales:
      return self
    scales = self.economy.scales(theta)

    def call(state, rows):
      times = tf.shape(rows)[0] // tf.shape(theta)[0]
      return self(state, rows, [tf.tile(s, tf.stack([times, 1])) for s in scales])
    return call

  def save(self, directory):
    """Writes `policy.keras` (the net) and `policy.json` (what wraps it)."""
    os.makedirs(directory, exist_ok=True)
    self.net.save(os.path.join(directory, "policy.keras"))
    with open(os.path.join(directory, "policy.json"), "w") as f:
      json.dump({"economy": self.economy.name, "normalization": self.normalization,
                 **self.economy.settings()}, f, indent=2)

  @classmethod
  def load(cls, directory):
    with open(os.path.join(directory, "policy.json")) as f:
      config = json.load(f)
    net = keras.saving.load_model(os.path.join(directory, "policy.keras"), safe_mode=True)
    return cls(economies.get(config["economy"], agents=config.get("agents", 0)), net,
               config["normalization"])
