"""The Grafana provisioning, statically: dashboards as generated, fixed uids, provisioned datasources,
and every metric a panel queries is one the services really export."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
UIDS = {"region-goals.json": "flk-region-goals", "care-unit.json": "flk-care-unit", "operations.json": "flk-operations"}


def _generator():
    spec = importlib.util.spec_from_file_location("generate_dashboards", GRAFANA / "generate_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict]:
    return {name: json.loads((GRAFANA / "dashboards" / name).read_text(encoding="utf-8")) for name in UIDS}


def _targets(dashboard: dict):
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel, target


def test_the_committed_dashboards_are_what_the_generator_writes():
    generator = _generator()
    for name, builder in generator.DASHBOARDS.items():
        assert (GRAFANA / "dashboards" / name).read_text(encoding="utf-8") == generator.render(builder), (
            f"{name} is stale: run python deploy/grafana/generate_dashboards.py")


def test_each_dashboard_has_its_fixed_uid_and_unique_panel_ids_on_a_24_column_grid():
    for name, dashboard in _dashboards().items():
        assert dashboard["uid"] == UIDS[name]
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
            assert panel["targets"], panel["title"]


def test_panels_use_only_the_provisioned_datasources_by_uid():
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yaml").read_text())
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    for dashboard in _dashboards().values():
        for panel, target in _targets(dashboard):
            ds = target["datasource"]
            assert uids.get(ds["uid"]) == ds["type"], panel["title"]
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] in uids


def test_the_postgres_datasource_logs_in_as_the_read_only_role():
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yaml").read_text())
    postgres = next(d for d in provisioned["datasources"] if d["uid"] == "flk-postgres")
    assert postgres["user"] == "${FLK_READONLY_USER}"


def test_sql_panels_only_select():
    for dashboard in _dashboards().values():
        for panel, target in _targets(dashboard):
            if "rawSql" in target:
                assert re.match(r"\s*(SELECT|WITH)\b", target["rawSql"], re.I), panel["title"]
                assert not re.search(r"\b(insert|update|delete|drop|alter|grant|truncate)\b", target["rawSql"], re.I)
                assert "patient_key" not in target["rawSql"], panel["title"]


def _exported_metric_names() -> set[str]:
    """Every sample name the four services' probes register (counters: _total, histograms: _bucket …)."""
    from prometheus_client import CollectorRegistry

    from flk.observability.metrics import PrometheusConsumerProbe
    from services.continuity.adapters.metrics import ContinuityMetrics
    from services.ingest.adapters.metrics import PrometheusIngestProbe
    from services.listing.adapters.metrics import PrometheusListingProbe
    from services.notifier.adapters.metrics import PrometheusProbe

    registries = [ContinuityMetrics().registry]
    for probe in (PrometheusConsumerProbe, PrometheusListingProbe, PrometheusProbe, PrometheusIngestProbe):
        registry = CollectorRegistry()
        probe(registry)
        registries.append(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
                "summary": ("_sum", "_count", "")}
    names = set()
    for registry in registries:
        for family in registry.collect():
            for suffix in suffixes.get(family.type, ("",)):
                names.add(family.name + suffix)
    return names


def test_every_metric_a_panel_queries_is_exported_by_a_service():
    exported = _exported_metric_names()
    queried = set()
    for dashboard in _dashboards().values():
        for panel, target in _targets(dashboard):
            for name in re.findall(r"\b(flk_[a-z0-9_]+)\b", target.get("expr", "")):
                queried.add(name)
                assert name in exported, f"{panel['title']}: {name} is not exported by any service"
    assert len(queried) >= 20


@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_panel_has_a_title_and_every_target_a_query(name):
    dashboard = _dashboards()[name]
    for panel, target in _targets(dashboard):
        assert panel["title"].strip()
        assert target.get("expr") or target.get("rawSql")


def _continuity_source(sql: str) -> str | None:
    found = re.search(r"\bcontinuity\.([a-z_]+)", sql)
    return found.group(1) if found else None


def test_where_a_dashboard_shows_the_sabo_continuity_cohort_a_rub_4_5_panel_shows_rub45_the_same_way():
    shown = 0
    for name, dashboard in _dashboards().items():
        sabo, rub45 = [], []
        for panel, target in _targets(dashboard):
            sql = target.get("rawSql", "")
            source = _continuity_source(sql)
            if source is None:
                continue
            if "cohort = 'sabo'" in sql or "goal = 'G4'" in sql:
                sabo.append((panel["type"], source))
            if "cohort = 'rub45'" in sql:
                assert "RUB 4–5" in panel["title"], f"{name}: '{panel['title']}' shows rub45 without saying RUB 4–5"
                rub45.append((panel["type"], source))
        assert sorted(rub45) == sorted(sabo), f"{name}: the sabo cohort's continuity panels and the rub45 ones differ"
        shown += len(rub45)
    assert shown >= 2  # the region goals' comparison table and time series


def test_every_panel_that_shows_G3_or_G4_says_they_count_sabo_residents_who_get_their_main_care_there():
    """Seed 001: the goals count SÄBO residents "som där får sin huvudsakliga hälso- och sjukvård"; a
    dashboard must say so where it shows them, and G3's panels count its population, not every resident."""
    shown = 0
    for name, dashboard in _dashboards().items():
        for panel, target in _targets(dashboard):
            sql = target.get("rawSql", "")
            if "g3_share" not in sql and "goal = 'G4'" not in sql and "cohort = 'sabo'" not in sql:
                continue
            shown += 1
            said = panel["title"] + " " + panel["description"] + " " + sql
            assert "main care there" in said or "main health care there" in said, f"{name}: '{panel['title']}'"
            assert "sabo_residents" not in sql, f"{name}: '{panel['title']}' counts every SÄBO resident"
    assert shown >= 6


def test_the_region_goals_show_the_shares_with_flk_fast_vardkontakt_and_both_with_the_seed_002_survey_as_reference():
    """Issue 13, item 6: population, RUB 4–5 and SÄBO, each with FLK, fast vårdkontakt and both (migration
    0007); seed 002's survey (93 % FLK, 97 % fast vårdkontakt among SÄBO residents) is a reference."""
    panels = [p for p in _dashboards()["region-goals.json"]["panels"]
              if any("fasta_kontakter_kpi_region" in t.get("rawSql", "") for t in p["targets"])]
    assert len(panels) == 1
    (panel,) = panels
    sql = panel["targets"][0]["rawSql"]
    for column in ("share_named_flk", "share_fast_vardkontakt", "share_both", "rub_4_5_share_named_flk",
                   "rub_4_5_share_fast_vardkontakt", "rub_4_5_share_both", "g3_share_named_flk",
                   "g3_share_fast_vardkontakt", "g3_share_both"):
        assert re.search(rf"\b{column}\b", sql), column
    assert "0.93" in sql and "0.97" in sql
    assert "93 %" in panel["description"] and "97 %" in panel["description"] and "seed 002" in panel["description"]
    migration = (ROOT / "services" / "listing" / "migrations" / "0007_fasta_kontakter_kpis.sql").read_text()
    assert "fasta_kontakter_kpi_region_on" in migration


def test_the_operations_dashboard_shows_the_guardian_consent_requests_waiting_closed_and_expired():
    exprs = {name for panel, target in _targets(_dashboards()["operations.json"])
             for name in re.findall(r"\b(flk_listing_[a-z_]*consent[a-z_]*)\b", target.get("expr", ""))}
    assert exprs == {"flk_listing_guardian_consent_pending", "flk_listing_guardian_consent_closed_total",
                     "flk_listing_consent_expired_total", "flk_listing_consent_expiry_runs_total"}


def test_the_operations_dashboard_shows_every_metric_of_the_fhir_ingest():
    """The FHIR ingest's Encounters by outcome, requests and their time, and its outbox: each of its metrics."""
    from prometheus_client import CollectorRegistry

    from services.ingest.adapters.metrics import PrometheusIngestProbe

    registry = CollectorRegistry()
    PrometheusIngestProbe(registry)
    exported = {family.name for family in registry.collect()}
    queried = {name for panel, target in _targets(_dashboards()["operations.json"])
               for name in re.findall(r"\b(flk_ingest_[a-z_]+?)(?:_total|_bucket|_sum|_count)?\b", target.get("expr", ""))}
    assert exported == {"flk_ingest_encounters", "flk_ingest_requests", "flk_ingest_request_seconds",
                        "flk_ingest_outbox_published", "flk_ingest_outbox_pending"}
    assert queried == exported


def test_the_dashboards_are_built_with_the_grafana_foundation_sdk():
    """The generator builds with the SDK's builders (issue 12): its dashboards are the SDK's model."""
    from grafana_foundation_sdk.models.dashboard import Dashboard

    generator = _generator()
    for name, builder in generator.DASHBOARDS.items():
        built = builder().build()
        assert isinstance(built, Dashboard) and built.uid == UIDS[name]
