"""Open311's refusals. The spec's rule: 404 for what does not exist, 403 for a missing or wrong api_key,
and "basically 400" for anything else the request got wrong (so no 422 here)."""

from __future__ import annotations

from gridrider.errors import DomainError, FieldError, NotFound


class BadRequest(DomainError):
    """Bad input; each field error becomes one entry of the errors list."""

    status, code = 400, "open311_invalid"

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(f"{field}: {code}", errors=[FieldError(field, code, message)])

    @classmethod
    def of(cls, errors: list[FieldError]) -> BadRequest:
        refusal = cls(errors[0].field, errors[0].code, errors[0].message)
        refusal.errors = list(errors)
        return refusal


class KeyRejected(DomainError):
    status, code = 403, "api_key_invalid"


class OutsideKeyArea(DomainError):
    status, code = 403, "outside_key_area"


class ServiceNotFound(NotFound):
    code = "service_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"


class FormatNotOffered(NotFound):
    code = "open311_format"


class ClientIdReused(DomainError):
    status, code = 400, "client_id_reused"
