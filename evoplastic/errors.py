"""The errors evoplastic raises for bad input; the CLI turns each into one line, the API lets them through.

All are ValueErrors, so code that caught ValueError before keeps working.
"""


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and how to fix it."""


class DataError(ValueError):
    """A dataset is missing, unreadable or holds values outside what the family accepts."""


class RunDirError(ValueError):
    """A run directory is missing, damaged, locked by another process or cannot be written."""


class PluginError(ConfigError):
    """A plug-in named by a config or a registry lookup cannot be found or imported."""
