"""The `flk` command's platform subcommands."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from tools.cli import main
from tools.infra.kafka import Kafka
from tools.infra.process import InfraError
from tools.infra.settings import InfraSettings
from flk.security.tokens import Role, verify_token
from flk.settings import PlatformSettings


def test_token_issue_prints_a_token_the_apis_accept():
    result = CliRunner().invoke(main, ["token", "issue", "--subject", "SE2321000016-U001", "--role", "clinician",
                                       "--unit", "SE2321000016-VCA1"])
    assert result.exit_code == 0, result.output
    principal = verify_token(PlatformSettings(), result.output.strip())
    assert principal.role is Role.CLINICIAN and principal.units == {"SE2321000016-VCA1"}


def test_topics_list_shows_every_topic_with_its_writer():
    result = CliRunner().invoke(main, ["topics", "list"])
    assert result.exit_code == 0
    assert "ehr.visits.v1" in result.output and "writer=listing" in result.output


def test_missing_java_or_maven_gives_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    kafka = Kafka(InfraSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state"))
    with pytest.raises(InfraError) as caught:
        kafka.ensure_jars()
    message = str(caught.value)
    assert "\n" not in message
    assert "'java' not found on PATH" in message
