"""One error type for problems a user can fix (bad params, missing inputs).

Stage entry points catch it and print a single line instead of a traceback.
"""


class PipelineError(Exception):
    """A user-facing failure: the message says what, where, and what is allowed."""


class ParamError(PipelineError):
    """A params.yaml value that is missing or out of range."""

    def __init__(self, key: str, given, allowed: str):
        super().__init__(f"params.yaml: {key} = {given!r} is not allowed; expected {allowed}")
        self.key = key
