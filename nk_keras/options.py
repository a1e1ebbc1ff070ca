"""Options defined once: a dataclass field holds an option's default and what its command-line
flag needs, and `cli.define_flags` makes the flags from the dataclass."""

import dataclasses


def option(default, help, lower=None, upper=None, choices=None):
  """A field of an options dataclass with the help text, the bounds (inclusive) and the allowed
  values of its flag."""
  return dataclasses.field(default=default, metadata=dict(help=help, lower=lower, upper=upper,
                                                          choices=choices))


def refused_by(fn):
  """A check's test (`checks` below) of one option from `fn(value)`, which raises a UserError
  that says what is wrong (reported instead of the check's message). None and "" pass: a
  required option left out or empty is its own check's to report."""
  return lambda values: all(v in (None, "") or fn(v) is not False for v in values.values())


def check(options, checks):
  """A UserError naming the first of `checks` ((names, test, message), ...) the dataclass
  `options` fails. A test may raise the UserError itself (`refused_by`)."""
  from nk_keras.errors import UserError
  values = dataclasses.asdict(options)
  for names, test, message in checks:
    if not test({n: values[n] for n in names}):
      raise UserError(message)
  return options
