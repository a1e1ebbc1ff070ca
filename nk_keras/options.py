"""Options defined once: a dataclass field holds an option's default and what its command-line
flag needs, and `cli.define_flags` makes the flags from the dataclass."""

import dataclasses


def option(default, help, lower=None, upper=None, choices=None):
  """A field of an options dataclass with the help text, the bounds (inclusive) and the allowed
  values of its flag."""
  return dataclasses.field(default=default, metadata=dict(help=help, lower=lower, upper=upper,
                                                          choices=choices))


def check(options, checks):
  """A UserError naming the first of `checks` ((names, test, message), ...) the dataclass
  `options` fails."""
  from nk_keras.errors import UserError
  values = dataclasses.asdict(options)
  for names, test, message in checks:
    if not test({n: values[n] for n in names}):
      raise UserError(message)
  return options
