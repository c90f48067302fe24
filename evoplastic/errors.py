"""The errors a user can fix: each message names the problem and the fix, and the CLI prints it in one line."""


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and how to fix it."""


class DataError(ValueError):
    """A dataset cannot be found, read or trusted; the message names the file and how to fix it."""


class RunDirError(ValueError):
    """A run directory cannot be used (busy, unwritable, damaged, full); the message names the file and the fix."""
