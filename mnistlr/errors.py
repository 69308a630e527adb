"""The one error family of mnistlr.

Every expected failure is an ``MnistlrError``; the CLI maps it, in one place,
to a single line on stderr and an exit status (1, or 2 for usage errors).
The message names the problem; ``hint`` names the fix.

Messages from the core name an option in backticks, as `l2` or `solver=gd`: Python shows it as
the keyword (l2, solver=gd), the command line as the flag (--l2, --solver gd), so one message
reads right from both.

For Python callers they are also the built-in exceptions they mean: a bad value
(`UsageError`, `DataError`, `ModelFileError`, `TrainingError`) is a ``ValueError``, a bad
type or an unknown keyword (`InputTypeError`, `UnknownOptionError`) a ``TypeError``, an output
that cannot be written (`OutputError`) an ``OSError``, and a missing optional package
(`MissingExtraError`) an ``ImportError``.
"""

from __future__ import annotations

import re

_OPTION = re.compile(r"`([A-Za-z][A-Za-z0-9_]*)(?:=([^`]*))?`")


def spell_options(text: str, flags: bool) -> str:
    """Each `name` / `name=value` in *text* as a flag (--name value) or a keyword (name=value)."""
    def spell(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if not flags:
            return name if value is None else f"{name}={value}"
        flag = "--" + name.replace("_", "-")
        return flag if value is None else f"{flag} {value}"

    return _OPTION.sub(spell, text)


def printable(text: str) -> str:
    """*text* with control characters, lone surrogates (undecodable bytes of a file name) and
    other unprintables escaped (\\x1b, \\udcff): text from files, servers and the environment
    can never move the cursor, recolour the terminal or break the line."""
    def escape(c: str) -> str:
        if c in "\n\r\t":
            return " "
        if c.isprintable():
            return c
        return c.encode("unicode_escape", "backslashreplace").decode("ascii", "replace")

    return "".join(escape(c) for c in text) if not text.isprintable() else text


class MnistlrError(Exception):
    """Base of all expected errors: a problem and (optionally) the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return spell_options(self._text(), flags=False)

    def for_command_line(self) -> str:
        """The one line the CLI prints: options spelled as flags."""
        return spell_options(self._text(), flags=True)

    def _text(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MnistlrError, ValueError):
    """A bad option value or combination of options (exit status 2)."""

    exit_code = 2


class UnknownOptionError(UsageError, TypeError):
    """A keyword argument that names no option (a TypeError, as Python's own)."""


class DataError(MnistlrError, ValueError):
    """A data file or array is missing, unreadable, malformed or does not fit."""


class InputTypeError(DataError, TypeError):
    """An array of the wrong type (text, objects, ...) where numbers belong."""


class FetchError(MnistlrError):
    """A download failed or a file did not verify."""


class ModelFileError(MnistlrError, ValueError):
    """A model file is missing, foreign, tampered with or of another format."""


class OutputError(MnistlrError, OSError):
    """An output cannot be written (no such directory, permission, a full disk, a device or a
    directory where a file belongs): an ``OSError`` for Python callers."""


class TrainingError(MnistlrError, ValueError):
    """Training could not proceed (divergence, degenerate data)."""


class ConvergenceWarning(UserWarning):
    """A warning, not an error: L-BFGS stopped at max_iter before its tolerance was met (the model is
    usable; more iterations or scaled inputs would bring it closer to the optimum)."""


class MissingExtraError(MnistlrError, ImportError):
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
    """Ctrl-C (or SIGTERM, SIGHUP): raised from the signal handler so every layer can clean up
    (exit status 128 + the signal's number: 130 for Ctrl-C)."""

    exit_code = 130

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 130):
        super().__init__(message, hint)
        self.exit_code = exit_code
