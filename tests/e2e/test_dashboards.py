"""Every Grafana panel returns data: a simulated region replayed through the real services, a real
Prometheus scraping them, each panel's PromQL run against Prometheus' HTTP API and each SQL panel
against PostgreSQL as the read-only role (Grafana's own datasource user)."""
from __future__ import annotations

import asyncio
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
RATE_INTERVAL = "5m"  # covers the whole replay; Grafana would pick ~4 scrape intervals
TIME_RANGE = "now() - interval '2 years' AND now()"


def substitute_sql(query: str, variables: dict[str, str]) -> str:
    query = re.sub(r"\$__timeFilter\(([^()]*)\)", lambda m: f"{m.group(1)} BETWEEN {TIME_RANGE}", query)
    for name, value in variables.items():
        query = query.replace(f"${name}", value)
    assert "$" not in query.replace("$$", ""), f"unsubstituted macro or variable in {query}"
    return query


def substitute_promql(expr: str, variables: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def prometheus_query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def send_a_refused_fhir_bundle(fhir_url: str) -> int:
    """The main job replays visits straight onto Kafka, so the FHIR gateway sees no traffic of its own. This
    sends it a transaction Bundle whose one Encounter names no patient, as an EHR integration of the unit:
    it is read, refused (4xx, an OperationOutcome) and counted, and nothing is recorded — the region's data
    stay as replayed, while the ingest's request panels get samples."""
    from flk.security.tokens import Role, issue_token
    from flk.settings import PlatformSettings  # the services run with this environment's platform settings
    from tests.support import fhir_examples as fx

    encounter = fx.encounter("e2e-dashboards-no-subject")
    del encounter["subject"]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{encounter['id']}", "resource": encounter,
         "request": {"method": "PUT", "url": f"Encounter/{encounter['id']}"}}]}
    token = issue_token(PlatformSettings(), "e2e-dashboards", Role.EHR_INTEGRATION, [fx.UNIT])
    request = urllib.request.Request(
        fhir_url, data=json.dumps(bundle).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def _has_number(sample: dict) -> bool:
    value = float(sample["value"][1])
    return not math.isnan(value)


async def resolve_variables(conn, dashboard: dict) -> dict[str, str]:
    """Each variable's own query, first value (what Grafana selects by default)."""
    values = {}
    for variable in dashboard["templating"]["list"]:
        rows = await conn.fetch(variable["query"])
        assert rows, f"{dashboard['uid']}: variable ${variable['name']} has no values"
        values[variable["name"]] = str(rows[0][0])
    return values


async def panel_problems(conn, prometheus: str, dashboard: dict) -> list[str]:
    variables = await resolve_variables(conn, dashboard)
    problems = []
    for panel in dashboard["panels"]:
        has_data = False
        for target in panel["targets"]:
            if "rawSql" in target:
                rows = await conn.fetch(substitute_sql(target["rawSql"], variables))
                has_data |= any(any(v is not None for v in row.values()) for row in rows)
            else:
                result = await asyncio.to_thread(prometheus_query, prometheus,
                                                 substitute_promql(target["expr"], variables))
                has_data |= any(_has_number(s) for s in result)
        if not has_data:
            problems.append(f"{dashboard['uid']}: '{panel['title']}' returned no data")
    return problems


async def test_every_dashboard_panel_returns_data_from_prometheus_and_the_read_only_database(region_run):
    import asyncpg

    assert region_run.job is not None, f"the main job did not reach its summary:\n{region_run.text}"
    if region_run.prometheus_url is None:
        pytest.fail("prometheus is not installed (Debian package 'prometheus'; ./run installs it)")
    dashboards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))]
    assert {d["uid"] for d in dashboards} == {"flk-region-goals", "flk-care-unit", "flk-operations"}
    conn = await asyncpg.connect(region_run.readonly_dsn)
    try:
        assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
        fhir = region_run.job.url(region_run.job.c.ingest_port, "/fhir")
        problems: list[str] = []
        for _ in range(12):  # gauges refresh every few seconds and Prometheus scrapes every 5 s
            # a request between two scrapes: a rate (and the answer time's quantile) needs an increase
            status = await asyncio.to_thread(send_a_refused_fhir_bundle, fhir)
            assert status in (400, 422), f"the FHIR gateway answered {status}, not a refusal of the Encounter"
            problems = []
            for dashboard in dashboards:
                problems += await panel_problems(conn, region_run.prometheus_url, dashboard)
            if not problems:
                break
            await asyncio.sleep(2.5)
    finally:
        await conn.close()
    assert not problems, "\n".join(problems)


async def test_prometheus_scrapes_all_four_services(region_run):
    if region_run.prometheus_url is None:
        pytest.fail("prometheus is not installed")
    result = await asyncio.to_thread(prometheus_query, region_run.prometheus_url, 'up{job="flk"}')
    assert len(result) == 4 and all(s["value"][1] == "1" for s in result), result  # + the FHIR ingest


def test_grafana_macros_and_variables_are_substituted():
    sql = "SELECT 1 FROM t WHERE $__timeFilter(a::timestamptz) AND u = '$unit'"
    assert substitute_sql(sql, {"unit": "SE1-X"}) == (
        f"SELECT 1 FROM t WHERE a::timestamptz BETWEEN {TIME_RANGE} AND u = 'SE1-X'")
    assert substitute_promql('rate(x{u="$unit"}[$__rate_interval])', {"unit": "U"}) == f'rate(x{{u="U"}}[{RATE_INTERVAL}])'
    with pytest.raises(AssertionError):
        substitute_sql("SELECT '$missing'", {})
