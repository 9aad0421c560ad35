"""Typed errors, one class per layer, each with the exit code the CLI returns.

The CLI catches :class:`ApplianceError` at one boundary (``appliance.cli.main``)
and prints ``error: <message>`` plus ``fix: <hint>``; it never shows a traceback.
Exit codes are documented in README.md and must stay stable for scripts.
"""
from __future__ import annotations


class ApplianceError(Exception):
    """Base of every error the appliance reports to a person."""

    exit_code = 1

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message


class UsageError(ApplianceError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class ConfigError(ApplianceError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 3


class InputError(ApplianceError):
    """An image, video or data file given to a command cannot be used."""

    exit_code = 4


class ModelError(ApplianceError):
    """A model file is missing, altered (hash mismatch) or unusable."""

    exit_code = 5


class BackendUnavailable(ApplianceError):
    """An inference or capture backend was chosen but cannot run here."""

    exit_code = 6


class CaptureError(ApplianceError):
    """The camera or replay source failed or gave unusable frames."""

    exit_code = 7


class KeyStoreError(ApplianceError):
    """The unit's key store is missing, unreadable or has unsafe permissions."""

    exit_code = 8


class WatchlistError(ApplianceError):
    """A watchlist bundle or deployment was refused."""

    exit_code = 9


class AuditError(ApplianceError):
    """The audit log cannot be written or does not verify; matching stops."""

    exit_code = 10


class PublishError(ApplianceError):
    """Alerts cannot be handed to the MQTT broker."""

    exit_code = 11


class StageFailed(ApplianceError):
    """A pipeline stage crashed with an unexpected error (a bug); the fault is audited."""

    exit_code = 12


class SelfTestFailed(ApplianceError):
    """The self-test found a failure (each failing check names its fix)."""

    exit_code = 13


EXIT_CODES = {
    0: "success",
    1: "unexpected internal error (a bug: please report it with the log)",
    **{cls.exit_code: cls.__doc__.strip() for cls in (
        UsageError, ConfigError, InputError, ModelError, BackendUnavailable,
        CaptureError, KeyStoreError, WatchlistError, AuditError, PublishError, StageFailed,
        SelfTestFailed)},
    130: "interrupted (SIGINT)",
}
