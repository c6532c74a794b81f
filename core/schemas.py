"""The strict base for every API schema (unknown fields and non-finite numbers are refused),
and the one shape of every error reply."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic import Strict as StrictType
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _no_bool_or_text(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


# Request numbers are JSON numbers, as the document says: pydantic's lax mode would also take
# true/false and numeric strings. An integer may be written 3 or 3.0 (JSON Schema allows both).
Number = Annotated[float, StrictType()]
Integer = Annotated[int, BeforeValidator(_no_bool_or_text)]


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


# A time with its offset, written as text (lax mode would read a number as Unix seconds).
Timestamp = Annotated[AwareDatetime, BeforeValidator(_text)]


# Unicode White_Space (what `str.strip` drops here), and the same as ECMA-262 class members.
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
    "\u2028\u2029\u202f\u205f\u3000"
_WS = "".join(f"\\u{ord(ch):04X}" for ch in WHITE_SPACE)
_CC = "\\u0000-\\u001F\\u007F-\\u009F"     # control characters (Unicode category Cc)


def _printable(value: str) -> str:
    """Text people type: surrounding white space is dropped; what is left is not blank and has
    no control characters (and PostgreSQL cannot store NUL). Lone surrogates never get here:
    the JSON parser refuses them."""
    value = value.strip(WHITE_SPACE)
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


# The same rule for the OpenAPI document (ECMA-262); lengths count the text as sent.
PRINTABLE_PATTERN = f"^[{_WS}]*[^{_WS}{_CC}][^{_CC}]*[{_WS}]*$"


class _Printable:
    """`_printable` as a validator, documented in the JSON schema by `PRINTABLE_PATTERN`."""

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_printable, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "pattern": PRINTABLE_PATTERN}


# Put on every free-text field of a request: `Annotated[str, ..., PRINTABLE]`.
PRINTABLE = _Printable()


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
