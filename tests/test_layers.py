"""Imports run one way only, so every behaviour has one home and a new interface (web, upload)
can call the stages without the command line: the layers below may never import the layers above,
and no stage imports another stage."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("settings and errors", ("pipeline", "pipeline.config", "pipeline.settings", "pipeline.errors")),
    (
        "catalog, store and custody log",
        ("pipeline.catalog", "pipeline.storage", "pipeline.custody", "pipeline.accounts"),
    ),
    ("stage layer", ("pipeline.stage",)),
    ("readers and rules", ("pipeline.metadata", "pipeline.deadline")),
    (
        "stages",
        (
            "pipeline.ingest",
            "pipeline.probe",
            "pipeline.transcode",
            "pipeline.package",
            "pipeline.fixity",
            "pipeline.archive",
            "pipeline.reports",
        ),
    ),
    (
        "orchestration",
        ("pipeline.ingest.batch", "pipeline.ingest.reconcile", "pipeline.ingest.watcher", "pipeline.runtime"),
    ),
    ("interfaces", ("pipeline.cli", "pipeline.web", "pipeline.__main__", "pipeline.upload_client", "workers")),
]
STAGES = (
    "pipeline.ingest",
    "pipeline.probe",
    "pipeline.transcode",
    "pipeline.package",
    "pipeline.fixity",
    "pipeline.archive",
    "pipeline.reports",
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def owner(name: str, groups: tuple[str, ...]) -> str | None:
    """The longest of ``groups`` that ``name`` is or is inside."""
    found = [g for g in groups if name == g or name.startswith(f"{g}.")]
    return max(found, key=len) if found else None


def layer_of(name: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        prefix = owner(name, prefixes)
        if prefix is not None and (best is None or len(prefix) > best[0]):
            best = (len(prefix), index)
    return None if best is None else best[1]


def imports_of(path: Path, name: str) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {n for n in found if n.split(".")[0] in ("pipeline", "workers")}


def violations(root: Path = ROOT) -> list[str]:
    problems = []
    for folder in ("pipeline", "workers"):
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = module_name(path, root)
            here = layer_of(name)
            assert here is not None, f"{name} belongs to no layer: add it to LAYERS"
            own_stage = owner(name, STAGES) if LAYERS[here][0] == "stages" else None
            for target in sorted(imports_of(path, name)):
                there = layer_of(target)
                if there is None:
                    continue
                if there > here:
                    problems.append(f"{name} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]}), a layer above")
                elif own_stage and LAYERS[there][0] == "stages" and owner(target, STAGES) != own_stage:
                    problems.append(f"{name} imports {target}: one stage may not import another")
    return problems


class TestLayers:
    def test_imports_run_one_way_and_no_stage_imports_another(self) -> None:
        """A lower layer never imports a higher one; a stage never imports another stage."""
        assert violations() == []

    def test_the_check_names_an_upward_import_and_a_stage_importing_another(self, tmp_path: Path) -> None:
        """The checker itself: a reader importing a stage, and one stage importing another, are named."""
        (tmp_path / "pipeline" / "metadata").mkdir(parents=True)
        (tmp_path / "pipeline" / "probe").mkdir()
        (tmp_path / "pipeline" / "metadata" / "odd.py").write_text("from pipeline.probe.stage import probe\n")
        (tmp_path / "pipeline" / "probe" / "odd.py").write_text(
            "def later():\n    from pipeline.transcode import stage\n\nfrom . import choose\n"
        )
        assert violations(tmp_path) == [
            "pipeline.metadata.odd (readers and rules) imports pipeline.probe.stage (stages), a layer above",
            "pipeline.metadata.odd (readers and rules) imports pipeline.probe.stage.probe (stages), a layer above",
            "pipeline.probe.odd imports pipeline.transcode: one stage may not import another",
            "pipeline.probe.odd imports pipeline.transcode.stage: one stage may not import another",
        ]
