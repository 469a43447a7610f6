"""Domain errors: what went wrong, in words a partner can act on.

The transport layer maps each kind to a gRPC status (and Envoy to an HTTP status); the
messages here are the documented ones and reach clients verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass

INVALID_REQUEST_BODY = "Invalid request body"


class JourneysError(Exception):
    """Base of every error whose message may be shown to a partner."""

    #: Stable machine-readable reason (AIP-193 `ErrorInfo.reason`).
    reason = "ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(JourneysError):
    """The request is malformed; nothing was written."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violation: FieldViolation | None = None) -> None:
        message = INVALID_REQUEST_BODY
        if violation is not None:
            message = f"{INVALID_REQUEST_BODY}: {violation.description}"
        super().__init__(message)
        self.violation = violation

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(FieldViolation(field, description))

    def within(self, parent: str) -> InvalidArgument:
        """The same error for a field nested in the request's `parent` field: the violation's
        path gains the prefix (`event.externalId`), the message stays the partner's words."""
        if self.violation is None:
            return self
        violation = self.violation
        return InvalidArgument(FieldViolation(f"{parent}.{violation.field}", violation.description))


class MissingApiKey(JourneysError):
    reason = "API_KEY_MISSING"

    def __init__(self) -> None:
        super().__init__("Missing X-API-Key header")


class InvalidApiKey(JourneysError):
    reason = "API_KEY_INVALID"

    def __init__(self) -> None:
        super().__init__("Invalid API key")


class RevokedApiKey(JourneysError):
    reason = "API_KEY_REVOKED"

    def __init__(self) -> None:
        super().__init__("API key has been revoked")


class SecretKeyRequired(JourneysError):
    reason = "SECRET_KEY_REQUIRED"

    def __init__(self) -> None:
        super().__init__("This endpoint requires a secret key")


class ExternalIdErased(InvalidArgument):
    """The id was erased with suppression: no profile may be made for it again."""

    reason = "EXTERNAL_ID_ERASED"

    def __init__(self) -> None:
        super().__init__(FieldViolation("externalId", "externalId has been erased"))


class NotFound(JourneysError):
    reason = "NOT_FOUND"


class UserNotFound(NotFound):
    reason = "USER_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("User not found")


class OfferNotFound(NotFound):
    reason = "OFFER_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Offer not found")


class SuppressionNotFound(NotFound):
    reason = "SUPPRESSION_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Suppression not found")


class WebhookNotFound(NotFound):
    reason = "WEBHOOK_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Webhook not found")


class PartnerNotFound(NotFound):
    """An operator named a partner that does not exist (the command line only)."""

    reason = "PARTNER_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Partner not found")


class FailedPrecondition(JourneysError):
    reason = "FAILED_PRECONDITION"


class WebhookLimitReached(FailedPrecondition):
    reason = "WEBHOOK_LIMIT_REACHED"

    def __init__(self, limit: int) -> None:
        super().__init__(f"At most {limit} webhooks per partner and environment")


class OfferNotActive(FailedPrecondition):
    reason = "OFFER_NOT_ACTIVE"

    def __init__(self) -> None:
        super().__init__("Offer is no longer active")


class OfferExpired(FailedPrecondition):
    reason = "OFFER_EXPIRED"

    def __init__(self) -> None:
        super().__init__("Offer has expired")


class RateLimited(JourneysError):
    reason = "RATE_LIMITED"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("Rate limit exceeded")
        self.retry_after_seconds = retry_after_seconds
