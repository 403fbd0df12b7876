"""Errors whose message says what to do: a stage prints them without a traceback."""


class StageError(RuntimeError):
    pass
