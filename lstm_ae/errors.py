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


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception in the main thread, like Ctrl-C's KeyboardInterrupt (which launchers
    and job code already let through); ``signum``: the signal."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, frame: object) -> None:
    """A signal handler: raise :class:`Interrupted` where the main thread is."""
    raise Interrupted(signum)
