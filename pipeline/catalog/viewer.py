"""Who is acting: the principal every query and action is given, so each can narrow what it reads
to what that principal may know exists (ACCESS.md). Pages, API, command line and workers only pass
it along; the rules live in the catalog's queries and actions."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.catalog.people import CLEARABLE, STRICTNESS, Classification, Role


@dataclass(frozen=True)
class Viewer:
    """An acting user or machine.

    ``name`` signs custody events; ``user_id`` is the account (None for the server's own
    authority, which the command line on the server holds); ``session_id`` and ``client`` say where
    a retrieval came from.
    """

    name: str
    roles: frozenset[Role] = frozenset()
    clearances: frozenset[Classification] = frozenset()
    user_id: str | None = None
    approver: bool = False
    dock: str | None = None
    session_id: str | None = None
    client: str | None = None
    server: bool = field(default=False, compare=False)

    @classmethod
    def local(cls, name: str) -> Viewer:
        """The server's own authority: whoever runs the command line on the server can read the
        store anyway, so it sees everything, and its actions are signed with ``name``."""
        return cls(
            name=name,
            roles=frozenset({Role.ADMIN, Role.CUSTODIAN, Role.AUDITOR}),
            clearances=frozenset(CLEARABLE),
            approver=True,
            server=True,
        )

    def has(self, *roles: Role) -> bool:
        """Whether the viewer holds any of ``roles``."""
        return bool(self.roles.intersection(roles))

    def cleared_for(self, classification: str) -> bool:
        """Whether the viewer may see records of this class (``none`` and ``unclassified`` need no
        clearance)."""
        if classification in (Classification.NONE, Classification.UNCLASSIFIED):
            return True
        return classification in self.clearances


def stricter(*classes: str | None) -> Classification:
    """The strictest of the given classes (an item's own and its case's); ``unclassified`` when
    none is given."""
    known = [Classification(c) for c in classes if c]
    return max(known, key=STRICTNESS.index, default=Classification.UNCLASSIFIED)
