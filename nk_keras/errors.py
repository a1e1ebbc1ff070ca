"""The one base class of the errors that mean "bad input", as opposed to a bug.

`cli.run` reports a `UserError` as one `error: ...` line (exit 2) and anything else as a bug
(exit 70, traceback kept in a log file). It derives from ValueError so that callers written
against the library's earlier ValueErrors keep catching them.
"""


class UserError(ValueError):
  """Bad input: an option, file, model directory or data set the library cannot use. The
  message is for the user: it names the input and, where known, what would be accepted."""


class ModelError(UserError):
  """A model directory that is missing, corrupt or not a policy of this contract."""
