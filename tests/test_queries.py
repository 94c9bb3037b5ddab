"""Catalog queries every interface shares: finding an item by the name a person gives."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from pipeline.catalog import queries
from pipeline.catalog.viewer import Viewer
from pipeline.errors import NotFoundError

SERVER = Viewer.local("clerk")  # the server's own authority sees every record


class TestFindItem:
    def test_by_id_hash_or_prefix_and_clear_errors_otherwise(self, cli, ctx, dock, media) -> None:
        """An ID, a SHA-256 or a unique prefix of either finds the item; a prefix shared by two
        items (IDs taken in the same instant share their time part) is ambiguous; a name that
        matches nothing, or is too short to be safe, is not found."""
        media.variant("voice.wav", dock / "a.wav", 1)
        media.variant("voice.wav", dock / "b.wav", 2)
        first, second = cli("ingest", str(dock), "--no-probe", "--json").records
        with Session(ctx.engine) as session:
            assert queries.find_item(session, str(first["item"]), viewer=SERVER).id == first["item"]
            assert queries.find_item(session, str(second["sha256"])[:12].upper(), viewer=SERVER).id == second["item"]
            with pytest.raises(queries.AmbiguousError, match="more than one item matches"):
                queries.find_item(session, str(first["item"])[:6], viewer=SERVER)
            with pytest.raises(NotFoundError, match="no item matches 'ZZZZZZZZ'"):
                queries.find_item(session, "ZZZZZZZZ", viewer=SERVER)
            with pytest.raises(NotFoundError):
                queries.find_item(session, str(first["item"])[:5], viewer=SERVER)
            assert queries.count_items(session, viewer=SERVER) == 2
