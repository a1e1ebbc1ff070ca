"""`files.replacing`: an output exists whole or not at all, whatever interrupts its writing."""

import os

import numpy as np
import pytest

from nk_keras import files


def test_an_interrupted_file_leaves_nothing_and_a_finished_one_appears(tmp_path):
  path = str(tmp_path / "dataset.npz")
  with pytest.raises(KeyboardInterrupt):
    with files.replacing(path) as tmp:
      np.savez(tmp, x=np.arange(3))
      raise KeyboardInterrupt   # interrupted after writing part of its output
  assert os.listdir(tmp_path) == []   # neither the result nor the partial file
  with files.replacing(path) as tmp:
    np.savez(tmp, x=np.arange(3))
  np.testing.assert_array_equal(np.load(path)["x"], np.arange(3))
  assert os.listdir(tmp_path) == ["dataset.npz"]


def _directory(path, name):
  os.makedirs(path)
  with open(os.path.join(path, name), "w") as f:
    f.write(name)


def test_a_directory_is_replaced_only_once_the_new_one_is_complete(tmp_path):
  path = str(tmp_path / "model")
  _directory(path, "old.txt")
  with pytest.raises(RuntimeError):
    with files.replacing(path) as tmp:
      _directory(tmp, "new.txt")
      raise RuntimeError("the evaluation failed")
  assert os.listdir(path) == ["old.txt"]
  with files.replacing(path) as tmp:
    _directory(tmp, "new.txt")
  assert os.listdir(path) == ["new.txt"]
  assert os.listdir(tmp_path) == ["model"]
