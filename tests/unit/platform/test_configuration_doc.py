"""docs/configuration.md lists every setting of every settings model, under its environment name."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from flk.settings import PlatformSettings
from services.continuity.settings import ContinuityServiceSettings
from services.ingest.settings import IngestSettings
from services.listing.settings import ListingSettings
from services.notifier.settings import NotifierSettings
from tools.infra.settings import InfraSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
MODELS = [PlatformSettings, ListingSettings, ContinuityServiceSettings, NotifierSettings, IngestSettings,
          InfraSettings]


def env_names(model: type[BaseSettings]) -> list[str]:
    prefix = model.model_config.get("env_prefix", "")
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            continue  # the nested platform settings: listed under their own prefix
        names.append((prefix + name).upper())
    return names


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_setting_of_every_service_is_documented_in_docs_configuration(model):
    documented = set(re.findall(r"`(FLK_[A-Z0-9_]+)`", DOC.read_text(encoding="utf-8")))
    missing = [name for name in env_names(model) if name not in documented]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_docs_configuration_names_no_variable_that_no_settings_model_reads():
    text = DOC.read_text(encoding="utf-8")
    table_rows = re.findall(r"^\| `(FLK_[A-Z0-9_]+)` \|", text.split("## Outside the settings models")[0], re.M)
    known = {name for model in MODELS for name in env_names(model)}
    stale = [name for name in table_rows if name not in known]
    assert not stale, f"docs/configuration.md documents settings no model has: {stale}"
