"""The README stays short and true to the code (issue 12): its size, its architecture map, and
its config-group table against ``conf/`` and ``lstm_ae.config.SCHEMAS`` (read at test time, so
a key, a module or a group added without documentation fails here)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

from lstm_ae.config import SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_BYTES = 15_360
ENTRY_SCRIPTS = ["lstm_ae_toy.py", "lstm_ae_mnist.py", "lstm_ae_snp500.py", "lstm_ae_series.py"]
SWEEPER_SHIM = "hydra_plugins/lstm_ae_optuna_sweeper"


@pytest.fixture(scope="module")
def text() -> str:
    return README.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The body of the ``## ...heading...`` section (up to the next ``## `` heading)."""
    match = re.search(rf"^##[ \t]+[^\n]*{heading}[^\n]*\n(.*?)(?=^##[ \t]|\Z)", text, re.M | re.S | re.I)
    assert match, f"README.md has no '## ... {heading} ...' section"
    return match.group(1)


def architecture_map(text: str) -> List[str]:
    """The non-blank lines of the first fenced code block under the architecture heading."""
    match = re.search(r"^```[^\n]*\n(.*?)^```", section(text, "architecture"), re.M | re.S)
    assert match, "the architecture section has no fenced code block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def named_paths(lines: List[str]) -> Set[str]:
    """What the map names: the first token of each line (a path), plus every path-like token
    (with a '/', or ending in .py/.yaml) and every ``lstm_ae.``/``bench.`` module in the rest."""
    names: Set[str] = set()
    for line in lines:
        first, _, rest = line.strip().partition(" ")
        names.add(first.rstrip(",:"))
        names.update(re.findall(r"[\w.-]*\w/[\w./-]*|[\w/.-]+\.(?:py|yaml)\b", rest))
        for module in re.findall(r"\b(?:lstm_ae|bench)(?:\.\w+)+", rest):
            names.add(module_path(module))
    return {n.rstrip(".,;:)") for n in names}


def module_path(dotted: str) -> str:
    """``lstm_ae.experiment.run`` -> ``lstm_ae/experiment.py`` (the longest prefix that is a
    module or package; the dotted name itself when none is, so the existence check fails)."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        stem = "/".join(parts[:n])
        if (ROOT / f"{stem}.py").is_file():
            return f"{stem}.py"
        if (ROOT / stem / "__init__.py").is_file():
            return f"{stem}/"
    return dotted


def config_table(text: str) -> Dict[str, List[str]]:
    """Rows of the config-group table: {group: [options cell, keys cell]}."""
    rows: Dict[str, List[str]] = {}
    for line in section(text, "config group").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0]) if line.lstrip().startswith("|") else None
        if match and len(cells) >= 3:
            rows[match.group(1)] = [cells[1], " | ".join(cells[2:])]
    assert rows, "the config-groups section has no table with a `group` column"
    return rows


def backticked_words(cell: str) -> Set[str]:
    return {w for span in re.findall(r"`([^`]*)`", cell) for w in re.findall(r"[A-Za-z_]\w*", span)}


def test_readme_is_at_most_15_kib():
    size = README.stat().st_size
    assert size <= MAX_BYTES, f"README.md has {size:,} bytes; at most {MAX_BYTES:,}: move details to docs/"


def test_architecture_map_names_only_existing_paths(text):
    missing = sorted(p for p in named_paths(architecture_map(text)) if not (ROOT / p).exists())
    assert not missing, f"the README's architecture map names paths that do not exist: {missing}"


def test_architecture_map_names_every_module(text):
    named = {p.rstrip("/") for p in named_paths(architecture_map(text))}
    wanted = [*ENTRY_SCRIPTS, SWEEPER_SHIM]
    for module in sorted((ROOT / "lstm_ae").rglob("*.py")):
        if "__pycache__" in module.parts:
            continue
        rel = module.relative_to(ROOT).as_posix()
        wanted.append(rel)
    missing = []
    for rel in wanted:
        folder = rel[: -len("/__init__.py")] if rel.endswith("/__init__.py") else None
        if rel not in named and folder not in named and not (rel == SWEEPER_SHIM and f"{rel}/__init__.py" in named):
            missing.append(rel)
    assert not missing, f"the README's architecture map lacks these modules (one line each): {missing}"


def test_config_table_lists_every_group_and_option(text):
    rows = config_table(text)
    groups = sorted(d.name for d in (ROOT / "conf").iterdir() if d.is_dir())
    assert sorted(rows) == groups, f"config-group table rows {sorted(rows)} != the folders under conf/ {groups}"
    for group in groups:
        options = {f.stem for f in (ROOT / "conf" / group).glob("*.yaml")}
        listed = backticked_words(rows[group][0])
        assert options <= listed, f"README config table, group `{group}`: options {sorted(options - listed)} missing"
        assert listed <= options, f"README config table, group `{group}`: lists options {sorted(listed - options)} not in conf/{group}/"


def test_every_schema_key_is_documented(text):
    rows = config_table(text)
    undocumented = []
    for group, nodes in SCHEMAS.items():
        assert group in rows, f"SCHEMAS group `{group}` has no row in the README's config table"
        documented = backticked_words(rows[group][1])
        for name, node in nodes.items():
            for f in dataclasses.fields(node):
                if f.name != "_target_" and (f.name not in documented or f.name not in text):
                    undocumented.append(f"{group}.{f.name} ({name})")
    assert not undocumented, (
        "config keys of lstm_ae.config.SCHEMAS not named (in backticks) in their group's row of the "
        f"README's config table: {sorted(set(undocumented))}"
    )
