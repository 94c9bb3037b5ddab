"""The package stage: a case handler asks for a case's items on disc; the stage plans the discs,
writes one ISO image per disc, reads every image back and compares every file with the catalog,
and records the package, its discs and a ``packaged`` custody event for the package and each item.

Requesting and building are separate steps, so a request can be built in-process or by a worker;
building again after a crash starts the images afresh, and a verified package is never rebuilt.
Items are only read.

This module is the stage's public face. The work lives beside it: :mod:`~pipeline.package.request`
records and checks a request, :mod:`~pipeline.package.build` claims and builds it,
:mod:`~pipeline.package.layout` places the files on each disc, :mod:`~pipeline.package.record`
writes the outcome, and :mod:`~pipeline.package.result` is the read model.
"""

from __future__ import annotations

from pipeline.package.build import HEARTBEAT, Progress, build_package, stale_packages
from pipeline.package.context import PackageContext
from pipeline.package.layout import ACCESS, ORIGINALS
from pipeline.package.request import ACCESS_KINDS, request_package
from pipeline.package.result import DiscResult, PackageResult

__all__ = [
    "ACCESS",
    "ACCESS_KINDS",
    "HEARTBEAT",
    "ORIGINALS",
    "DiscResult",
    "PackageContext",
    "PackageResult",
    "Progress",
    "build_package",
    "request_package",
    "stale_packages",
]
