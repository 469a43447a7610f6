"""Domain errors as rich gRPC statuses (AIP-193: a message, ErrorInfo, BadRequest details)."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from journeys import errors

#: ErrorInfo.domain of every error this service raises. The gateway shows a client the
#: message of an error only when it carries this domain, so text from gRPC internals or
#: Envoy never reaches a partner.
ERROR_DOMAIN = "journeys"

_CODES: tuple[tuple[type[errors.JourneysError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.MissingApiKey, grpc.StatusCode.UNAUTHENTICATED),
    (errors.InvalidApiKey, grpc.StatusCode.UNAUTHENTICATED),
    (errors.RevokedApiKey, grpc.StatusCode.PERMISSION_DENIED),
    (errors.SecretKeyRequired, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


def status_code(error: errors.JourneysError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(
    code: grpc.StatusCode, message: str, reason: str, violation: errors.FieldViolation | None
) -> status_pb2.Status:
    details = [error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)]
    if violation is not None:
        details.insert(
            0,
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=violation.field, description=violation.description
                    )
                ]
            ),
        )
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


def for_error(error: errors.JourneysError) -> status_pb2.Status:
    violation = error.violation if isinstance(error, errors.InvalidArgument) else None
    return rich_status(status_code(error), error.message, error.reason, violation)


def internal(message: str) -> status_pb2.Status:
    return rich_status(grpc.StatusCode.INTERNAL, message, "INTERNAL", None)


def trailers(error: errors.JourneysError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata an error adds to its status."""
    if isinstance(error, errors.RateLimited):
        # Envoy passes it on as the HTTP Retry-After header.
        return (("retry-after", str(error.retry_after_seconds)),)
    return ()


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    rich: status_pb2.Status,
    extra: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """Ends the call with `rich` (grpcio-status packs its details into the trailer)."""
    packed = rpc_status.to_status(rich)
    await context.abort(
        packed.code, packed.details, trailing_metadata=(*extra, *packed.trailing_metadata)
    )
    raise AssertionError("context.abort() always raises")
