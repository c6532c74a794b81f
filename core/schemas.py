"""The strict base for every API schema (unknown fields and non-finite numbers are refused),
and the one shape of every error reply."""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


def _printable(value: str) -> str:
    """Text people type has no control characters (and PostgreSQL cannot store NUL). Lone
    surrogates never get here: the JSON parser refuses them."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


# Put on every free-text field of a request: `Annotated[str, ..., PRINTABLE]`.
PRINTABLE = AfterValidator(_printable)


class Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    code: str = Field(description="what went wrong, for programs: validation_error, not_found, "
                                  "conflict, unauthorized, rate_limited, unavailable, ...")
    message: str = Field(description="what went wrong, for people")
    details: Any = Field(None, description="for validation errors a list of "
                                           "{field, message, type}, one per bad field")


class ErrorOut(BaseModel):
    """The body of every error reply."""

    error: ErrorBody


ERROR_MEANINGS = {
    400: "The body could not be read (malformed).",
    401: "The bearer token is missing, invalid, expired, or of the wrong role.",
    404: "No such resource (or not one the caller may see).",
    409: "The request conflicts with the current state.",
    413: "The body is larger than the server accepts.",
    422: "Invalid input: `details` names each bad field.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    503: "A backing service is unavailable; retry after `Retry-After` seconds.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route answers with (one error shape)."""
    return {status: {"model": ErrorOut, "description": ERROR_MEANINGS[status]}
            for status in statuses}
