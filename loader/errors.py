"""Errors the loader raises, as a tree:

    PersonaError
    ├── ConfigError      bad flag, URI or setting: stop and tell the user which one
    ├── SourceError      the source cannot go on (a fatal Kafka client error)
    └── SinkError
        ├── TransientSinkError  retry (lock held, network blip)
        └── TerminalSinkError   stop (missing privilege, schema that cannot be migrated)

Bad *input* is never an exception that escapes: it becomes a ``FailedEvent``.
"""

from __future__ import annotations


class PersonaError(Exception):
    """Root of every error Persona raises on purpose."""


class ConfigError(PersonaError):
    """A setting is wrong; the message names it and says what would be accepted."""


class SourceError(PersonaError):
    """The source failed in a way that retrying will not fix."""


class SinkError(PersonaError):
    """The warehouse refused a batch."""


class TransientSinkError(SinkError):
    """Worth retrying: the same batch may succeed later."""


class TerminalSinkError(SinkError):
    """Not worth retrying: a person must fix something first."""
