"""Validating envelopes against the JSON Schemas shipped in `events/schemas/`."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from events.catalogue import EventType


@cache
def _registry() -> Registry:
    folder = resources.files("events").joinpath("schemas")
    registry: Registry = Registry()
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text())
            registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return registry


@cache
def validator(type_: EventType) -> Draft202012Validator:
    schema = _registry().contents(f"{type_.value}.json")
    return Draft202012Validator(schema, registry=_registry())


def schema_errors(envelope: dict[str, Any]) -> list[str]:
    """Every way `envelope` breaks its type's schema (an empty list when it is valid)."""
    try:
        type_ = EventType(str(envelope.get("type")))
    except ValueError:
        return [f"unknown event type {envelope.get('type')!r}"]
    return [f"{'/'.join(map(str, e.path))}: {e.message}"
            for e in validator(type_).iter_errors(envelope)]
