"""Alembic environment: migrations run on the connection the pipeline hands over."""

from alembic import context
from sqlmodel import SQLModel

import pipeline.catalog.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from pipeline.catalog.db import modelled

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=modelled,
)
with context.begin_transaction():
    context.run_migrations()
