"""Errors a user can cause. They are reported in one line, without a traceback."""


class UserError(Exception):
    """A mistake in the config, the data or the command line; the message says how to fix it."""


class ConfigError(UserError):
    """A config value that is out of range or inconsistent with the data."""


class DataError(UserError):
    """A data file that is missing or malformed."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class CheckpointError(UserError):
    """A checkpoint to resume from that is missing, unreadable or does not fit the model."""


class RunFolderError(UserError):
    """A run folder that holds another run, or an interrupted run a plain rerun would overwrite."""
