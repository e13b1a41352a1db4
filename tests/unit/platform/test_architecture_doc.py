"""docs/architecture.md's topic table is the topic registry (schemas/topics.yaml), row for row."""
from __future__ import annotations

import re
from pathlib import Path

from flk.events.registry import registry

ROOT = Path(__file__).resolve().parents[3]


def documented_topics() -> dict[str, tuple[str, str, list[str]]]:
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"`[a-z0-9.-]+\.v\d+`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[4], re.findall(r"`([^`]+)`", cells[5]))
    return rows


def test_the_architecture_doc_lists_every_registry_topic_with_its_key_writer_and_events():
    documented = documented_topics()
    for topic in registry().topics:
        assert topic.name in documented, f"docs/architecture.md lacks {topic.name}"
        key, writer, events = documented[topic.name]
        assert (key, writer, sorted(events)) == (topic.key, topic.writer, sorted(topic.events)), topic.name
    assert set(documented) == {t.name for t in registry().topics}
