"""User-facing errors: the CLI prints these as one clear line, without a traceback."""


class VaecfError(Exception):
    """Base class for errors caused by input, configuration or environment, not by a bug."""


class DataError(VaecfError):
    """A ratings file, archive or prepared split is missing, malformed or inconsistent."""


class DownloadError(VaecfError):
    """A transfer failed or its result does not match the published checksum."""


class TrainingError(VaecfError):
    """Training cannot go on (a non-finite loss, an unusable configuration)."""
