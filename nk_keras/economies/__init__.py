"""Economies by name: the one place that knows which models exist.

Each class is imported on first use: listing the names (the train app's `--economy` flag, made
before TF is imported) needs no TensorFlow."""

import importlib
from collections.abc import MutableMapping

from nk_keras.errors import UserError


class _Registry(MutableMapping):
  """name -> Economy subclass, its module imported when the class is first asked for."""

  def __init__(self, where):
    self._where = dict(where)          # name -> "module.Class" under nk_keras.economies
    self._classes = {}

  def __getitem__(self, name):
    if name not in self._classes:
      module, cls = self._where[name].rsplit(".", 1)
      self._classes[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return self._classes[name]

  def __setitem__(self, name, cls):
    self._where[name], self._classes[name] = None, cls

  def __delitem__(self, name):
    del self._where[name]
    self._classes.pop(name, None)

  def __iter__(self):
    return iter(self._where)

  def __len__(self):
    return len(self._where)


ECONOMIES = _Registry({"nk": "nk.NewKeynesian", "rank_zlb": "rank_zlb.RankZLB",
                       "rank_zlb_inertia": "rank_zlb_inertia.RankZLBInertia",
                       "hank_zlb": "hank.HankZLB", "hank_zlb_collapse": "hank.HankCollapse"})


def get(name, prior=None, agents=0):
  """The economy `name`; `agents` > 0: that many agents in an economy with a set of them."""
  if name not in ECONOMIES:
    raise UserError(f"unknown economy {name!r}; known: {', '.join(ECONOMIES)}")
  cls = ECONOMIES[name]
  if not agents:
    return cls(prior=prior)
  if not cls.n_agents:
    raise UserError(f"economy {name!r} has no set of agents: --agents is for those that do")
  return cls(prior=prior, n_agents=agents)
