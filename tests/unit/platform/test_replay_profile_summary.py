"""The replay profiler's summary of py-spy's raw stacks (bench/mainjob/profile_replay.py): samples
waiting in the event loop are counted apart, the rest attributed to the leaf's function and package."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.mainjob.profile_replay import package_of, summarise_profile

SITE = "/work/main/.venv/lib/python3.11/site-packages"
RAW = "\n".join([
    f"<module> (tools/cli.py:3);Runner.run (/usr/lib/python3.11/asyncio/runners.py:118) 60",
    f"<module> (tools/cli.py:3);handle (/w/services/listing/service_layer/handlers.py:80);"
    f"Connection._do_execute ({SITE}/asyncpg/connection.py:1800) 30",
    f"<module> (tools/cli.py:3);decide (/w/services/listing/domain/rules.py:12) 10",
]) + "\n"


@pytest.mark.unit
def test_waiting_in_the_event_loop_is_counted_apart_and_the_rest_shared_by_leaf(tmp_path: Path) -> None:
    raw = tmp_path / "listing.collapsed"
    raw.write_text(RAW)
    lines = [line.strip() for line in summarise_profile(raw, top=5, rate=10)]
    assert lines[0].startswith("40 samples at work (≈ 4 s), 60 waiting in the event loop")
    assert "75.0 %  asyncpg" in lines
    assert "25.0 %  services/listing/domain" in lines
    assert "75.0 %  Connection._do_execute (connection.py)" in lines


@pytest.mark.unit
@pytest.mark.parametrize("path, package", [
    (f"{SITE}/aiokafka/consumer/fetcher.py", "aiokafka"),
    ("/usr/lib/python3.11/json/decoder.py", "stdlib:json"),
    ("/work/wt/services/listing/adapters/repository.py", "services/listing/adapters"),
    ("/work/wt/flk/events/envelope.py", "flk/events/envelope"),
])
def test_a_frame_is_attributed_to_the_package_a_reader_recognises(path: str, package: str) -> None:
    assert package_of(path) == package
