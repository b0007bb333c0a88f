"""User-facing errors: the CLI prints these as one clear line, without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class VaecfError(Exception):
    """Base class for errors caused by input, configuration or environment, not by a bug."""


class DataError(VaecfError):
    """A ratings file, archive or prepared split is missing, malformed or inconsistent."""


class DownloadError(VaecfError):
    """A transfer failed or its result does not match the published checksum."""


class TrainingError(VaecfError):
    """Training cannot go on (a non-finite loss, an unusable configuration)."""


class ConfigError(VaecfError, ValueError):
    """A setting outside its allowed values: names the field, the value and what is allowed.

    Also a ValueError, which is what a bad argument is to Python callers. ``rule`` is the message
    without the value, for a front end that names where the value came from (``--batch-size 0: ...``).
    """

    def __init__(self, field: str, value: object, allowed: str, *, rule: str | None = None) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        self.rule = rule or f"{field} must be {allowed}"
        super().__init__(rule or f"{self.rule}, not {value!r}")


def exit_code(prog: str, command: Callable[[], int | None], resume: str) -> int:
    """Run ``command``; its exit code, with what a user can fix as one line and exit 2, never a traceback.

    A VaecfError or an OSError (a folder that is a file, no permission, a full disk) is
    ``PROG: error: ...``; an interrupt is 130 and ``resume`` says what was kept. Both command
    lines (``vaecf``, ``python -m ablations``) end here.
    """
    try:
        return int(command() or 0)
    except VaecfError as e:
        message = str(e)
    except OSError as e:
        message = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {resume}", file=sys.stderr)
        return 130
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2
