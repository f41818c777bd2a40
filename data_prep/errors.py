"""The one exception type for mistakes a user can fix (bad path, bad option, corrupt file).

It lives here because `data_prep` is the root of the import graph: every other package may
import it, and the `cram` CLI turns it into one line on stderr and exit status 2.
"""


class UserError(Exception):
    """A problem with the user's input: printed as one line, never as a traceback."""
