"""Alembic environment: the URL comes from settings (or the caller's config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import accounts.models
import dispatch.models
import events.models
import trips.models
from core.db import Base
from core.settings import Settings

MODELS = (accounts.models, dispatch.models, events.models, trips.models)


def _url() -> str:
    return context.config.get_main_option("sqlalchemy.url") or Settings().database_url


def _include(obj: object, name: str | None, type_: str, reflected: bool,
             compare_to: object) -> bool:
    # PostGIS's own tables are not ours to manage.
    return not (type_ == "table" and name in {"spatial_ref_sys"})


def run() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          include_object=_include, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


run()
