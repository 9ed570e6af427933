"""Errors the serving layer raises, as a tree; the HTTP layer maps each to one status:

ServingError
├── BadRequest        400: the body is not JSON, or not the shape the endpoint takes
├── Unauthorized      401: no or wrong bearer token (and no browser credential)
├── Forbidden         403: a browser asked about a device, session or user not its own
├── NotFound          404: unknown service, attribute group or attribute (named)
├── AlreadyExists     400: a POST of a definition that exists (the SDK then PUTs)
├── TooLarge          413: a body over the size limit
├── TooManyIds        422: more identifiers than a request may carry (the limit is named)
└── DefinitionError   422: a definition that cannot compile; running ones are untouched
"""

from __future__ import annotations

from loader.errors import PersonaError


class ServingError(PersonaError):
    status = 500


class BadRequest(ServingError):
    status = 400


class Unauthorized(ServingError):
    status = 401


class Forbidden(ServingError):
    status = 403


class NotFound(ServingError):
    status = 404


class AlreadyExists(ServingError):
    """The Signals SDK creates with POST and, on a 400, updates with PUT: hence 400."""

    status = 400


class TooLarge(ServingError):
    status = 413


class TooManyIds(ServingError):
    status = 422


class DefinitionError(ServingError):
    """A stream or batch attribute group, or a service, that cannot be served; the message
    names the definition (and the attribute) and says why."""

    status = 422


class ReadOnly(ServingError):
    """A publish sent to an API replica: definitions change through the live process."""

    status = 405
