"""The one error family of mnistlr.

Every expected failure is an ``MnistlrError``; the CLI maps it, in one place,
to a single line on stderr and an exit status (1, or 2 for usage errors).
The message names the problem; ``hint`` names the fix.
"""

from __future__ import annotations


class MnistlrError(Exception):
    """Base of all expected errors: a problem and (optionally) the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(MnistlrError):
    """A bad option value or combination of options (exit status 2)."""

    exit_code = 2


class DataError(MnistlrError):
    """A data file is missing, unreadable, malformed or does not fit."""


class FetchError(MnistlrError):
    """A download failed or a file did not verify."""


class ModelFileError(MnistlrError):
    """A model file is missing, foreign, tampered with or of another format."""


class TrainingError(MnistlrError):
    """Training could not proceed (divergence, degenerate data)."""


class MissingExtraError(MnistlrError):
    """An optional dependency (an extra) is not installed."""

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the optional package '{module}'",
            f"install it with: pip install 'mnistlr[{extra}]'",
        )


class OutputClosed(MnistlrError):
    """The reader of the output went away (e.g. ``| head``): not an error, exit status 0."""

    exit_code = 0


class Interrupted(MnistlrError):
    """Ctrl-C: raised from the SIGINT handler so every layer can clean up (exit status 130)."""

    exit_code = 130
