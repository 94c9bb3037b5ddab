"""Spreads a package's items over as few discs as hold them. An item (its original with its access
copies) is never split; one too large for the medium is refused, naming a medium that fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.package.errors import ItemTooLarge
from pipeline.package.media import BASE_OVERHEAD, Medium, footprint, smallest_fitting


@dataclass(frozen=True)
class PlannedItem:
    item_id: str
    sizes: tuple[int, ...]  # the original's size, then its access copies'
    order: str  # sort key: capture time, then id, so each disc lists items in time order

    @property
    def need(self) -> int:
        return footprint(list(self.sizes))


def plan_discs(items: Sequence[PlannedItem], medium: Medium, *, margin: float) -> list[list[PlannedItem]]:
    """Discs, each a list of items in time order, the discs ordered by their first item.

    Largest items are placed first, each on the first disc with room (first-fit decreasing), which
    keeps the number of discs close to the least possible.
    """
    room = medium.usable - BASE_OVERHEAD
    for item in items:
        if item.need > room:
            fits = smallest_fitting(item.need, margin=margin)
            raise ItemTooLarge(item.item_id, item.need, medium.description, fits.description if fits else None)
    discs: list[list[PlannedItem]] = []
    free: list[int] = []
    for item in sorted(items, key=lambda it: (-it.need, it.order)):
        for index, left in enumerate(free):
            if item.need <= left:
                discs[index].append(item)
                free[index] -= item.need
                break
        else:
            discs.append([item])
            free.append(room - item.need)
    ordered = [sorted(disc, key=lambda it: it.order) for disc in discs]
    return sorted(ordered, key=lambda disc: disc[0].order)
