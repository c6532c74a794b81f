"""The OpenAPI document, with the error replies every route can give.

Routes declare the errors of their own logic (404, 409, 429) with `error_responses`. The rest
follow from an operation's shape, so they are added here and cannot drift from the code:
422 wherever there is input (in our error shape, not FastAPI's), 400 and 413 wherever there is
a body, 401 wherever a bearer token is required, and 503 everywhere a backing service is used.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from core.schemas import ERROR_MEANINGS, ErrorOut

REF = "#/components/schemas/{model}"
METHODS = {"get", "put", "post", "delete", "patch"}
UNMONITORED_TAGS = {"health"}   # liveness and readiness answer in their own shape


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(title=app.title, version=app.version, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    models = schema.setdefault("components", {}).setdefault("schemas", {})
    error = ErrorOut.model_json_schema(ref_template=REF)
    models.update(error.pop("$defs", {}))
    models["ErrorOut"] = error
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in METHODS and not UNMONITORED_TAGS & set(operation.get("tags", ())):
                _add_errors(operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        models.pop(unused, None)
    return schema


def _add_errors(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    statuses = [503]
    if "requestBody" in operation:
        statuses += [400, 413]
    if operation.get("security"):
        statuses.append(401)
    if "requestBody" in operation or operation.get("parameters"):
        statuses.append(422)
    for status in statuses:
        responses[str(status)] = {
            "description": ERROR_MEANINGS[status],
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}},
        }
