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
                       "rank_zlb_inertia": "rank_zlb_inertia.RankZLBInertia"})


def get(name, prior=None):
  if name not in ECONOMIES:
    raise UserError(f"unknown economy {name!r}; known: {', '.join(ECONOMIES)}")
  return ECONOMIES[name](prior=prior)
