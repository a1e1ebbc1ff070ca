# `python -m apps.reference` and `python apps/reference.py` from the repository root: the app
# nk_keras.apps.reference, installed as `nk-reference`. No docstring, so that --help shows
# the app's.
import os
import sys

if not __package__:  # run as a file: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nk_keras.apps import reference

if __name__ == "__main__":
  reference.run()
