"""The Grafana dashboards as code, built with Grafana's Foundation SDK (``grafana-foundation-sdk``,
its builders for Grafana's current dashboard schema): `python deploy/grafana/generate_dashboards.py`
writes the JSON files in deploy/grafana/dashboards/ (committed; a unit test checks they match this file).

Datasources are referenced by their fixed uids (provisioning/datasources/datasources.yaml):
``flk-prometheus`` and ``flk-postgres`` (the read-only role ``flk_reader``, which may read only the
services' reporting views and aggregate tables — never a patient key). The SDK has no builder for the
PostgreSQL datasource's queries, so ``SqlQuery`` below is one, the way the SDK's README defines a custom
query type.

Every PromQL and SQL query here is executed by tests/e2e/test_dashboards.py against a real
Prometheus scraping the services and against PostgreSQL as the read-only role, after a simulated
region has been replayed through the services; each panel must return data. Grafana macros used:
``$__timeFilter(col)`` and ``$__rate_interval`` only; variables: ``$region``, ``$baseline``, ``$unit``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from grafana_foundation_sdk.builders import (
    barchart, bargauge, dashboard as dash, piechart, prometheus, stat, table, timeseries,
)
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.cog import builder as cogbuilder, runtime as cogruntime, variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode, BigValueGraphMode, BigValueTextMode, BarGaugeDisplayMode, DataSourceRef,
    LegendDisplayMode, LegendPlacement, TableCellHeight, VisibilityMode, VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync, DynamicConfigValue, Threshold, ThresholdsMode, VariableHide, VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.piechart import PieChartLegendValues, PieChartType

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="flk-prometheus")
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid="flk-postgres")
OUT = Path(__file__).resolve().parent / "dashboards"


# ------------------------------------------------------------------ the PostgreSQL query type

class SqlQuery(cogvariants.Dataquery):
    """A query of Grafana's PostgreSQL datasource in code mode (raw SQL)."""

    def __init__(self, raw_sql: str = "", ref_id: str | None = None, format_val: str = "table",
                 datasource: DataSourceRef | None = None) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.format_val = format_val
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id} if self.ref_id is not None else {}
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        payload |= {"format": self.format_val, "rawQuery": True, "editorMode": "code", "rawSql": self.raw_sql}
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(raw_sql=data.get("rawSql", ""), ref_id=data.get("refId"), format_val=data.get("format", "table"),
                   datasource=DataSourceRef.from_json(ds) if ds is not None else None)


def sql_query_variant() -> cogruntime.DataqueryConfig:
    """Lets the SDK read these queries back (``register_dataquery_variant``), as it does its own."""
    return cogruntime.DataqueryConfig(identifier="grafana-postgresql-datasource", from_json_hook=SqlQuery.from_json)


class Sql(cogbuilder.Builder[SqlQuery]):
    def __init__(self, query: str) -> None:
        self._internal = SqlQuery(raw_sql=" ".join(query.split()), datasource=POSTGRES)

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def format(self, format_val: str) -> Self:
        self._internal.format_val = format_val
        return self


# ------------------------------------------------------------------ building blocks

Query = prometheus.Dataquery | Sql
P = TypeVar("P")


def prom(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return (prometheus.Dataquery().ref_id(ref).datasource(PROMETHEUS).expr(expr).legend_format(legend or "__auto")
            .range())


def sql(query: str, fmt: str = "table", ref: str = "A") -> Sql:
    return Sql(query).ref_id(ref).format(fmt)


def panel(builder: P, title: str, targets: Sequence[Query], *, w: int = 12, h: int = 8, unit: str | None = None,
          description: str = "", thresholds: list[tuple[str, float | None]] | None = None,
          minimum: float | None = None, maximum: float | None = None,
          overrides: Sequence[tuple[str, list[DynamicConfigValue]]] = ()) -> P:
    """What every panel has: title, help, size (the dashboard places it), datasource, queries, field
    defaults; ``overrides`` are (field-name regexp, properties)."""
    builder = (builder.title(title).description(description).span(w).height(h)
               .datasource(targets[0].build().datasource).targets(list(targets)))
    if unit:
        builder = builder.unit(unit)
    if minimum is not None:
        builder = builder.min(minimum)
    if maximum is not None:
        builder = builder.max(maximum)
    if thresholds:
        builder = builder.thresholds(dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
            [Threshold(color=colour, value=value) for colour, value in thresholds]))
    for regexp, properties in overrides:
        builder = builder.override_by_regexp(regexp, properties)
    return builder


def last_value(per_row: bool = False) -> ReduceDataOptions:
    return ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(per_row)


def stat_panel(title: str, targets: Sequence[Query], *, color_mode: BigValueColorMode = BigValueColorMode.BACKGROUND,
               **kw) -> stat.Panel:
    return (panel(stat.Panel(), title, targets, **kw).reduce_options(last_value()).color_mode(color_mode)
            .text_mode(BigValueTextMode.VALUE_AND_NAME).graph_mode(BigValueGraphMode.NONE))


def table_panel(title: str, targets: Sequence[Query], **kw) -> table.Panel:
    return panel(table.Panel(), title, targets, **kw).show_header(True).cell_height(TableCellHeight.SM)


def timeseries_panel(title: str, targets: Sequence[Query], **kw) -> timeseries.Panel:
    return panel(timeseries.Panel(), title, targets, **kw)


def piechart_panel(title: str, targets: Sequence[Query], **kw) -> piechart.Panel:
    legend = (piechart.PieChartLegendOptions().show_legend(True).display_mode(LegendDisplayMode.TABLE)
              .placement(LegendPlacement.RIGHT).values([PieChartLegendValues.VALUE, PieChartLegendValues.PERCENT]))
    return (panel(piechart.Panel(), title, targets, **kw).reduce_options(last_value()).pie_type(PieChartType.DONUT)
            .legend(legend))


def bargauge_panel(title: str, targets: Sequence[Query], **kw) -> bargauge.Panel:
    """One horizontal bar per row of the query (e.g. per care unit)."""
    return (panel(bargauge.Panel(), title, targets, **kw).orientation(VizOrientation.HORIZONTAL)
            .display_mode(BarGaugeDisplayMode.BASIC).reduce_options(last_value(per_row=True)))


def barchart_panel(title: str, targets: Sequence[Query], *, x_field: str, horizontal: bool = False,
                   legend: bool = False, **kw) -> barchart.Panel:
    builder = panel(barchart.Panel(), title, targets, **kw).x_field(x_field).show_value(VisibilityMode.AUTO)
    if horizontal:
        builder = builder.orientation(VizOrientation.HORIZONTAL)
    if legend:
        builder = builder.legend(VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST)
                                 .placement(LegendPlacement.BOTTOM))
    return builder


def variable(name: str, label: str, query: str, description: str = "",
             sort: VariableSort = VariableSort.ALPHABETICAL_ASC) -> dash.QueryVariable:
    builder = (dash.QueryVariable(name).label(label).datasource(POSTGRES).query(query)
               .refresh(VariableRefresh.ON_DASHBOARD_LOAD).include_all(False).multi(False).sort(sort)
               .hide(VariableHide.DONT_HIDE))
    return builder.description(description) if description else builder


def dashboard(uid: str, title: str, description: str, panels: Sequence[cogbuilder.Builder], variables: Sequence[dash.QueryVariable],
              time_from: str = "now-2y", refresh: str = "30s") -> dash.Dashboard:
    """Panels are numbered in order and laid out left to right, 24 columns wide, by the SDK."""
    board = (dash.Dashboard(title).uid(uid).description(description).tags(["flk"]).timezone("browser").readonly()
             .tooltip(DashboardCursorSync.CROSSHAIR).version(1).refresh(refresh).time(time_from, "now"))
    board = board.variables(list(variables))  # an empty list too: Grafana and the e2e test read templating.list
    for number, panel_builder in enumerate(panels, start=1):
        board = board.with_panel(panel_builder.id(number))
    return board


SHARE_GOAL = lambda target: [("red", None), ("green", target)]  # noqa: E731
#: in a stat of a share, the fields that are counts (named "… counted …"): plain numbers, neutral colour
COUNTS_AS_NUMBERS = [("/counted/", [DynamicConfigValue(id_val="unit", value="none"),
                                    DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "text"})])]
#: what G3 counts (seed 001), said on every panel that shows it
G3_COUNTS = ("G3 counts the SÄBO residents who get their main health care there (\"som där får sin huvudsakliga "
             "hälso- och sjukvård\", seed 001): a resident recorded as getting it elsewhere is not counted; one "
             "whose residence fact does not say (older producers) is counted, and shown as \"main care not "
             "recorded\".")
G4_COHORT = ("SÄBO residents who get their main health care there, or whose residence fact does not say; residents "
             "recorded as getting it elsewhere are not in the cohort.")


# ------------------------------------------------------------------ Region goals

#: the fasta kontakter table (migration 0007): shares as percent, the person counts as numbers
FASTA_KONTAKTER_OVERRIDES = [
    ("named FLK|fast vårdkontakt|both|survey.*", [DynamicConfigValue(id_val="unit", value="percentunit"),
                                                  DynamicConfigValue(id_val="decimals", value=1)]),
]
FASTA_KONTAKTER_HELP = (
    "Named FLK: an FLK on a doctor list (a fictive list, F3, is not one). Fast vårdkontakt: an open "
    "appointment of any profession (V1). RUB 4–5: the person's latest risk assessment; persons never "
    "assessed are in neither group. SÄBO: G3's population (residents who get their main care there, or it is "
    "not recorded). "
    "Seed 004 (Kalmar) asks for both an FLK and a fast vårdkontakt for RUB high-need patients. Reference, "
    "not a target: SKR's survey of autumn 2021 (seed 002) found 93 % of SÄBO residents with a fast "
    "läkarkontakt and 97 % with a fast vårdkontakt — the latter within the municipal health care, which "
    "this register does not hold, so a lower figure here need not mean fewer contacts. "
    "Source: listing.fasta_kontakter_kpi_region (per unit: listing.fasta_kontakter_kpi_unit).")


def region_goals() -> dash.Dashboard:
    region = "entity_id = '$region'"
    windows = ("CASE WHEN comparable THEN 'complete' ELSE 'INCOMPLETE (' || COALESCE(round(100 * "
               "least(baseline_coverage, now_coverage))::text || ' % covered)', 'coverage unknown)') END")
    comparison = """
        SELECT contacts, baseline_date AS "baseline", now_date AS "now",
               baseline_n AS "n baseline", baseline_mean AS "baseline COC", now_n AS "n now", now_mean AS "now COC",
               change AS "change", change_ci_low AS "change 95 % low", change_ci_high AS "change 95 % high",
               panel_n AS "same patients", panel_change AS "same patients' change", {windows} AS "windows",
               verdict
        FROM continuity.goal_comparison('$baseline'::date)
        WHERE level = 'region' AND {region} AND {rows} ORDER BY contacts"""
    g2 = comparison.format(windows=windows, region=region, rows="goal = 'G2'")
    g4 = comparison.format(windows=windows, region=region, rows="goal = 'G4'")
    # the RUB 4–5 cohort has no national target: no verdict, but whether the change is significant
    rub45 = comparison.replace("verdict\n", "significant AS \"change significant\"\n").format(
        windows=windows, region=region, rows="cohort = 'rub45' AND contacts = 'doctor'")
    over_time = """
        SELECT snapshot_date::timestamptz AS "time",
               CASE WHEN window_complete THEN mean END AS "mean COC",
               CASE WHEN window_complete THEN ci_low END AS "95 % low",
               CASE WHEN window_complete THEN ci_high END AS "95 % high",
               CASE WHEN NOT window_complete THEN mean END AS "mean COC, INCOMPLETE window (not a goal figure)"
        FROM continuity.goal_series
        WHERE level = 'region' AND {region} AND cohort = '{cohort}' AND contacts = '{contacts}'
          AND $__timeFilter(snapshot_date::timestamptz)
        ORDER BY 1"""
    series_help = ("Daily snapshots of the continuity worker (continuity.goal_series): mean COC over eligible "
                   "patients with its 95 % interval (delta method). A date whose 18-month window reaches back "
                   "before the visit data are complete is drawn apart as INCOMPLETE: it counts fewer visits and "
                   "fewer eligible patients, so it is not comparable with a complete one.")
    panels = [
        stat_panel("G1 — named fast läkarkontakt, share of the population (target ≥ 55 %)",
                  [sql("SELECT g1_share_of_population AS \"population with a named FLK\", "
                       "g1_share_of_listed AS \"listed with a named FLK\" "
                       "FROM listing.goal_kpi_region WHERE region_code = '$region'")],
                  w=8, h=6, unit="percentunit", thresholds=SHARE_GOAL(0.55),
                  description="Persons with an FLK on a doctor list (a fictive list, F3, is not one) of the "
                              "folkbokförda population. Source: listing.goal_kpi_region."),
        stat_panel("G3 — SÄBO residents who get their main care there, with a named FLK (target ≥ 80 %)",
                  [sql("SELECT g3_share AS \"with a named FLK\", g3_residents AS \"counted in G3\", "
                       "sabo_main_care_elsewhere AS \"main care elsewhere (not counted)\", "
                       "g3_main_care_unknown AS \"main care not recorded (counted)\" "
                       "FROM listing.goal_kpi_region WHERE region_code = '$region'")],
                  w=8, h=6, unit="percentunit", thresholds=SHARE_GOAL(0.80),
                  overrides=COUNTS_AS_NUMBERS,
                  description=G3_COUNTS + " Source: listing.goal_kpi_region."),
        table_panel("G1 and G3 now vs baseline",
                  [sql("""SELECT 'G1 named FLK, population' AS goal, b.g1_share_of_population AS baseline,
                          n.g1_share_of_population AS now,
                          n.g1_share_of_population - b.g1_share_of_population AS change, n.g1_target AS target
                          FROM listing.goal_kpi_region n
                          JOIN listing.goal_kpi_region_on('$baseline'::date) b USING (region_code)
                          WHERE region_code = '$region'
                          UNION ALL
                          SELECT 'G3 SÄBO (main care there) with named FLK', b.g3_share, n.g3_share,
                          n.g3_share - b.g3_share,
                          n.g3_target
                          FROM listing.goal_kpi_region n
                          JOIN listing.goal_kpi_region_on('$baseline'::date) b USING (region_code)
                          WHERE region_code = '$region'""")],
                  w=8, h=6, unit="percentunit",
                  description="Both computed by the listing service from its register's periods "
                              "(listing.goal_kpi_region_on(date)). " + G3_COUNTS),
        table_panel("Visit data coverage", [sql(
                  "SELECT CASE WHEN care_unit_id = '' THEN 'whole region' ELSE care_unit_id END AS \"scope\", "
                  "complete_from AS \"visit data complete from\", source, recorded_at AS \"recorded\" "
                  "FROM continuity.data_coverage WHERE region_code = '$region' ORDER BY care_unit_id")],
                  w=24, h=4,
                  description="From which date the region's visit data are complete (set by `flk ehr import` "
                              "or configuration). A continuity window that starts earlier is incomplete."),
        table_panel("G2 — continuity index (mean COC) now vs baseline (target +20 %)", [sql(g2)],
                  w=24, h=6,
                  description="Mean Bice–Boxerman COC over listed patients with ≥ 3 visits at their listing unit "
                              "in 18 months; doctor contacts and total contacts, with cohort sizes, the change's "
                              "95 % interval (delta method) and the same patients' change. Verdict: met when the "
                              "interval's lower bound reaches +20 %, not met when its upper bound is below, else "
                              "inconclusive; incomplete_window when either window is not complete. Source: "
                              "continuity.goal_comparison($baseline)."),
        table_panel("G4 — doctor continuity of SÄBO residents who get their main care there, now vs baseline "
                  "(target: a significant increase)",
                  [sql(g4)], w=24, h=5,
                  description="As G2, for the SÄBO cohort — the residents G3 counts: " + G4_COHORT + " Met means "
                              "the change's 95 % interval lies above zero (a significant increase). Source: "
                              "continuity.goal_comparison($baseline)."),
        table_panel("RUB 4–5 — chronic and complex patients' doctor continuity now vs baseline (no national target)",
                  [sql(rub45)], w=24, h=5,
                  description="As G4, for the patients whose current RUB band (the latest ACG assessment) is 4 or "
                              "5, for whom relational continuity is prioritised. There is no national target, so "
                              "no verdict: 'change significant' says whether the change's 95 % interval excludes "
                              "zero (read it only with complete windows and at least 30 patients at both dates). "
                              "Source: continuity.goal_comparison($baseline)."),
        timeseries_panel("G2 over time — mean COC, doctor contacts, with 95 % interval",
                  [sql(over_time.format(region=region, cohort="all", contacts="doctor"), fmt="time_series")],
                  w=6, h=8, minimum=0, maximum=1, description=series_help),
        timeseries_panel("G2 over time — mean COC, total contacts, with 95 % interval",
                  [sql(over_time.format(region=region, cohort="all", contacts="total"), fmt="time_series")],
                  w=6, h=8, minimum=0, maximum=1, description=series_help),
        timeseries_panel("G4 over time — mean COC, doctor contacts, SÄBO residents (main care there), "
                  "with 95 % interval",
                  [sql(over_time.format(region=region, cohort="sabo", contacts="doctor"), fmt="time_series")],
                  w=6, h=8, minimum=0, maximum=1, description=series_help + " The cohort: " + G4_COHORT),
        timeseries_panel("RUB 4–5 over time — mean COC, doctor contacts, with 95 % interval",
                  [sql(over_time.format(region=region, cohort="rub45", contacts="doctor"), fmt="time_series")],
                  w=6, h=8, minimum=0, maximum=1, description=series_help),
        timeseries_panel("G1 and G3 over time",
                  [sql("SELECT snapshot_on::timestamptz AS \"time\", g1_share_of_population AS \"G1 named FLK\", "
                       "g1_target AS \"G1 target\", g3_share AS \"G3 SÄBO (main care there) with named FLK\", "
                       "g3_target AS \"G3 target\" "
                       "FROM listing.goal_kpi_region_history WHERE region_code = '$region' "
                       "AND $__timeFilter(snapshot_on::timestamptz) ORDER BY 1", fmt="time_series")],
                  w=12, h=8, unit="percentunit", minimum=0, maximum=1,
                  description="Stored days (flk listing kpi-snapshot, daily) plus today live "
                              "(listing.goal_kpi_region_history). " + G3_COUNTS),
        piechart_panel("Listed persons: why some lack a named FLK",
                  [sql("SELECT listed_with_named_flk AS \"named FLK\", listed_declined AS \"declined (F7)\", "
                       "listed_on_fictive_list_only AS \"fictive list only (F3)\", listed_without_flk AS \"none\" "
                       "FROM listing.goal_kpi_region WHERE region_code = '$region'")],
                  w=12, h=8),
        bargauge_panel("G1 by care unit — share of the unit's listed patients with a named FLK",
                  [sql("SELECT care_unit_id AS unit, g1_share_of_listed AS \"named FLK\" FROM listing.goal_kpi_unit "
                       "WHERE region_code = '$region' ORDER BY care_unit_id")],
                  w=12, h=9, unit="percentunit", thresholds=SHARE_GOAL(0.55), minimum=0, maximum=1),
        bargauge_panel("G3 by care unit — SÄBO residents who get their main care there, with a named FLK",
                  [sql("SELECT care_unit_id AS unit, g3_share AS \"SÄBO (main care there) with a named FLK\" "
                       "FROM listing.goal_kpi_unit WHERE region_code = '$region' AND g3_residents > 0 "
                       "ORDER BY care_unit_id")],
                  description=G3_COUNTS,
                  w=12, h=9, unit="percentunit", thresholds=SHARE_GOAL(0.80), minimum=0, maximum=1),
        table_panel("Fasta kontakter — share with a named FLK, a fast vårdkontakt, and both",
                  [sql("""SELECT 'Population' AS "group", population AS "persons",
                          share_named_flk AS "named FLK", share_fast_vardkontakt AS "fast vårdkontakt",
                          share_both AS "both", NULL::numeric AS "survey 2021: FLK",
                          NULL::numeric AS "survey 2021: fast vårdkontakt"
                          FROM listing.fasta_kontakter_kpi_region WHERE region_code = '$region'
                          UNION ALL
                          SELECT 'RUB 4–5 (latest assessment)', rub_4_5, rub_4_5_share_named_flk,
                          rub_4_5_share_fast_vardkontakt, rub_4_5_share_both, NULL, NULL
                          FROM listing.fasta_kontakter_kpi_region WHERE region_code = '$region'
                          UNION ALL
                          SELECT 'SÄBO (G3 population)', g3_residents, g3_share_named_flk,
                          g3_share_fast_vardkontakt, g3_share_both, 0.93, 0.97
                          FROM listing.fasta_kontakter_kpi_region WHERE region_code = '$region'""")],
                  w=24, h=6, overrides=FASTA_KONTAKTER_OVERRIDES,
                  description=FASTA_KONTAKTER_HELP),
        table_panel("Continuity by care unit — doctor contacts now vs baseline",
                  [sql("SELECT entity_id AS unit, now_n AS \"n now\", now_mean AS \"now COC\", "
                       "now_ci_low AS \"95 % low\", now_ci_high AS \"95 % high\", baseline_mean AS \"baseline COC\", "
                       "change AS \"change\", change_ci_low AS \"change 95 % low\", "
                       "change_ci_high AS \"change 95 % high\", verdict "
                       "FROM continuity.goal_comparison('$baseline'::date) "
                       "WHERE level = 'unit' AND cohort = 'all' AND contacts = 'doctor' ORDER BY entity_id")],
                  w=24, h=8,
                  description="A small unit's interval is wide: too_few_patients means its cohort is too small "
                              "for the interval to be trusted, not that the unit did badly."),
    ]
    variables = [
        variable("region", "Region (län)", "SELECT DISTINCT entity_id FROM continuity.aggregate_snapshot "
                 "WHERE level = 'region' ORDER BY 1"),
        variable("baseline", "Baseline date",
                 "SELECT d::text FROM (SELECT baseline_date AS d, 0 AS k FROM continuity.baseline "
                 "UNION SELECT DISTINCT snapshot_date, 1 FROM continuity.aggregate_snapshot) x ORDER BY k, d",
                 description="The region's pinned baseline (continuity.baseline) is the default; else the "
                             "earliest snapshot.", sort=VariableSort.DISABLED),
    ]
    return dashboard("flk-region-goals", "Region goals (G1–G4)",
                     "The national goals for primary care against their targets: named FLK (G1), continuity "
                     "(G2), FLK (G3) and continuity (G4) of the SÄBO residents who get their main care there; now "
                     "vs the baseline date. Beside them the "
                     "continuity of the RUB 4–5 cohort (chronic and complex patients), which has no target.",
                     panels, variables)


# ------------------------------------------------------------------ Care unit

def care_unit() -> dash.Dashboard:
    unit = "care_unit_id = '$unit'"
    panels = [
        stat_panel("Listed patients with a named FLK (goal 55 %)",
                  [sql(f"SELECT g1_share_of_listed AS \"named FLK\", declined AS \"declined (F7)\", "
                       f"on_fictive_list_only AS \"fictive list only (F3)\", listed FROM listing.goal_kpi_unit "
                       f"WHERE {unit}")],
                  w=8, h=5, unit="percentunit", thresholds=SHARE_GOAL(0.55)),
        stat_panel("G3 — SÄBO residents who get their main care there, with a named FLK (goal 80 %)",
                  [sql(f"SELECT g3_share AS \"with a named FLK\", g3_residents AS \"counted in G3\", "
                       f"sabo_main_care_elsewhere AS \"main care elsewhere (not counted)\", "
                       f"g3_main_care_unknown AS \"main care not recorded (counted)\" "
                       f"FROM listing.goal_kpi_unit WHERE {unit}")],
                  w=8, h=5, unit="percentunit", thresholds=SHARE_GOAL(0.80),
                  overrides=COUNTS_AS_NUMBERS,
                  description=G3_COUNTS + " Of the unit's listed patients. Source: listing.goal_kpi_unit."),
        stat_panel("Open care gaps (RUB 4–5 or SÄBO without a named FLK; RUB 4–5 without a fast vårdkontakt "
                          "where the region requires one)",
                  [sql(f"SELECT open_gaps AS \"open gaps\", open_gaps_rub_4_5 AS \"RUB 4–5\", "
                       f"open_gaps_sabo AS \"SÄBO\", open_gaps_fast_vardkontakt AS \"no fast vårdkontakt\", "
                       f"extract(epoch FROM now() - oldest_opened_at) / 86400 "
                       f"AS \"oldest (days)\" FROM notifier.open_care_gaps_by_unit WHERE {unit}")],
                  w=8, h=5, color_mode=BigValueColorMode.VALUE),
        barchart_panel("Lists vs capacity per doctor (1 100 × FTE, ST 550 × FTE; fictive lists have none)",
                  [sql("SELECT l.display_name AS list, l.patients AS \"patients with this FLK\", "
                       "c.benchmark_capacity AS \"capacity\" FROM listing.goal_kpi_list l "
                       "LEFT JOIN listing.list_load c USING (list_id) WHERE l.care_unit_id = '$unit' "
                       "ORDER BY l.kind, l.display_name")],
                  w=24, h=9, x_field="list", horizontal=True, legend=True,
                  description="Sources: listing.goal_kpi_list, listing.list_load (capacity). Patients on a fictive list (locums, F3) count as "
                              "lacking an FLK."),
        barchart_panel("Continuity distribution — listed patients by doctor COC",
                  [sql(f"SELECT to_char((b.i - 1) / 10.0, 'FM0.0') || '–' || to_char(b.i / 10.0, 'FM0.0') AS coc, "
                       f"b.n AS \"patients (doctor contacts)\", t.n AS \"patients (total contacts)\" "
                       f"FROM continuity.latest_aggregates a, "
                       f"unnest(a.coc_doctor_buckets) WITH ORDINALITY AS b(n, i), "
                       f"unnest(a.coc_total_buckets) WITH ORDINALITY AS t(n, i) "
                       f"WHERE a.level = 'unit' AND a.entity_id = '$unit' AND a.cohort = 'all' AND b.i = t.i "
                       f"ORDER BY b.i")],
                  w=12, h=8, x_field="coc",
                  description="Listed patients with ≥ 3 visits at the unit in 18 months, in COC buckets of 0.1."),
        table_panel("Continuity per doctor (their FLK patients)",
                  [sql(f"SELECT entity_id AS doctor, listed_patients AS \"FLK patients\", "
                       f"eligible_doctor AS \"eligible\", mean_coc_doctor AS \"mean COC doctor\", "
                       f"mean_coc_total AS \"mean COC total\" FROM continuity.latest_aggregates "
                       f"WHERE level = 'doctor' AND {unit} AND cohort = 'all' ORDER BY mean_coc_doctor NULLS LAST")],
                  w=12, h=8),
        timeseries_panel("Unit continuity over time — mean COC, doctor contacts, with 95 % interval",
                  [sql("SELECT snapshot_date::timestamptz AS \"time\", "
                       "CASE WHEN window_complete THEN mean END AS \"mean COC\", "
                       "CASE WHEN window_complete THEN ci_low END AS \"95 % low\", "
                       "CASE WHEN window_complete THEN ci_high END AS \"95 % high\", "
                       "CASE WHEN NOT window_complete THEN mean END AS \"INCOMPLETE window (not comparable)\" "
                       "FROM continuity.goal_series WHERE level = 'unit' AND entity_id = '$unit' AND cohort = 'all' "
                       "AND contacts = 'doctor' AND $__timeFilter(snapshot_date::timestamptz) ORDER BY 1",
                       fmt="time_series")],
                  w=12, h=8, minimum=0, maximum=1,
                  description="A unit's cohort is small: the interval shows how far its mean can move by chance."),
        timeseries_panel("Unit named-FLK shares over time",
                  [sql("SELECT snapshot_on::timestamptz AS \"time\", g1_share_of_listed AS \"listed with a named FLK\", "
                       "g3_share AS \"SÄBO (main care there) with a named FLK\" FROM listing.goal_kpi_unit_history "
                       "WHERE care_unit_id = '$unit' AND $__timeFilter(snapshot_on::timestamptz) ORDER BY 1",
                       fmt="time_series")],
                  w=12, h=8, unit="percentunit", minimum=0, maximum=1),
        barchart_panel("Open care gaps by age",
                  [sql(f"SELECT CASE WHEN now() - opened_at < interval '14 days' THEN '< 2 weeks' "
                       f"WHEN now() - opened_at < interval '30 days' THEN '2–4 weeks' "
                       f"WHEN now() - opened_at < interval '90 days' THEN '1–3 months' ELSE '≥ 3 months' END AS age, "
                       f"count(*) AS \"open gaps\", min(now() - opened_at) AS youngest "
                       f"FROM notifier.care_gap_history WHERE {unit} AND resolved_at IS NULL "
                       f"GROUP BY 1 ORDER BY min(now() - opened_at)")],
                  w=12, h=8, x_field="age"),
        timeseries_panel("Open care gaps (live, from the notifier)",
                  [prom('sum(flk_notifier_open_care_gaps{care_unit_id="$unit"})', "open gaps"),
                   prom('max(flk_notifier_oldest_open_care_gap_age_seconds{care_unit_id="$unit"}) / 86400',
                        "oldest (days)", ref="B")],
                  w=12, h=8),
        table_panel("Alerts sent to the unit (delivery log)",
                  [sql(f"SELECT finished_at AS \"time\", kind, channel, attempt, outcome, "
                       f"coalesce(http_status::text, smtp_code::text) AS \"status\" FROM notifier.delivery_log "
                       f"WHERE {unit} ORDER BY finished_at DESC LIMIT 100")],
                  w=12, h=8,
                  description="Alerts carry counts only and link to the unit's worklist (login required)."),
    ]
    variables = [variable("unit", "Care unit (HSA-id)", "SELECT care_unit_id FROM listing.goal_kpi_unit ORDER BY 1")]
    return dashboard("flk-care-unit", "Care unit", "One care unit: lists vs capacity, continuity, care gaps, alerts.",
                     panels, variables)


# ------------------------------------------------------------------ Operations

def operations() -> dash.Dashboard:
    ri = "$__rate_interval"
    panels = [
        stat_panel("Services up (scraped by Prometheus)", [prom('up{job="flk"}', "{{instance}}")],
                  w=24, h=4, thresholds=[("red", None), ("green", 1)]),
        timeseries_panel("Throughput — continuity worker (events/s)",
                  [prom(f"sum by (event_type) (rate(flk_continuity_events_processed_total[{ri}]))",
                        "{{event_type}}")], w=8, unit="ops"),
        timeseries_panel("Throughput — listing service (messages/s)",
                  [prom(f"sum by (message_type, outcome) (rate(flk_listing_messages_total[{ri}]))",
                        "{{message_type}} {{outcome}}")], w=8, unit="ops"),
        timeseries_panel("Throughput — notifier (events/s)",
                  [prom(f"sum by (event_type) (rate(flk_notifier_events_handled_total[{ri}]))",
                        "{{event_type}}")], w=8, unit="ops"),
        timeseries_panel("Consumer lag and outbox backlog",
                  [prom("sum by (topic) (flk_continuity_consumer_lag_records)", "continuity lag {{topic}}"),
                   prom("sum(flk_listing_outbox_pending)", "listing outbox pending", ref="B"),
                   prom("sum(flk_listing_parked_commands_waiting)", "listing commands waiting for their person",
                        ref="C")],
                  w=12, description="Records not yet consumed by the continuity worker, per input topic; listing "
                                    "events not yet relayed from the outbox to Kafka; listing commands from Kafka "
                                    "parked until the population register knows their person (rejected "
                                    "person_unknown after FLK_LISTING_PERSON_WAIT_S)."),
        timeseries_panel("Dead-lettered events (cumulative, by topic and category)",
                  [prom("sum by (topic, category) (flk_continuity_events_dead_lettered_total)",
                        "continuity {{topic}} {{category}}"),
                   prom("sum by (topic, category) (flk_notifier_events_dead_lettered_total)",
                        "notifier {{topic}} {{category}}", ref="B"),
                   prom("sum by (consumer, topic, category) (flk_events_dead_lettered_total)",
                        "{{consumer}} {{topic}} {{category}}", ref="C")],
                  w=12, description="Each dead letter is in <topic>.dlq with its reason (dlq_reason header)."),
        timeseries_panel("Alert delivery (cumulative)",
                  [prom("sum by (channel, kind) (flk_notifier_alerts_sent_total)", "sent {{channel}} {{kind}}"),
                   prom("sum by (channel) (flk_notifier_alert_retries_total)", "retried {{channel}}", ref="B"),
                   prom("sum by (channel, reason) (flk_notifier_alerts_failed_total)",
                        "failed {{channel}} {{reason}}", ref="C")],
                  w=12),
        timeseries_panel("Alert delivery latency, planned → delivered (p95)",
                  [prom(f"histogram_quantile(0.95, sum by (le, channel) "
                        f"(rate(flk_notifier_alert_delivery_latency_seconds_bucket[{ri}])))", "{{channel}}"),
                   prom(f"histogram_quantile(0.95, sum by (le, channel) "
                        f"(rate(flk_notifier_delivery_attempt_seconds_bucket[{ri}])))", "attempt {{channel}}",
                        ref="B")],
                  w=12, unit="s"),
        timeseries_panel("Errors — listing rejections, retries, conflicts (per second)",
                  [prom(f"sum by (reason_code) (rate(flk_listing_rejections_total[{ri}]))", "rejected {{reason_code}}"),
                   prom(f"sum by (consumer, category) (rate(flk_events_retried_total[{ri}]))",
                        "retry {{consumer}} {{category}}", ref="B"),
                   prom(f"sum by (category) (rate(flk_notifier_consumer_retries_total[{ri}]))",
                        "notifier retry {{category}}", ref="C"),
                   prom(f"sum by (message_type) (rate(flk_listing_conflict_retries_total[{ri}]))",
                        "conflict {{message_type}}", ref="D")],
                  w=12, unit="ops"),
        timeseries_panel("Processing time (p95)",
                  [prom(f"histogram_quantile(0.95, sum by (le) (rate(flk_listing_decision_seconds_bucket[{ri}])))",
                        "listing decision"),
                   prom(f"histogram_quantile(0.95, sum by (le) (rate(flk_continuity_recompute_seconds_bucket[{ri}])))",
                        "continuity batch", ref="B"),
                   prom(f"histogram_quantile(0.95, sum by (le, consumer) (rate(flk_event_handle_seconds_bucket[{ri}])))",
                        "{{consumer}} event", ref="C")],
                  w=12, unit="s"),
        timeseries_panel("Continuity worker state",
                  [prom("sum(flk_continuity_patients)", "patients in tables"),
                   prom("sum(flk_continuity_state_bytes)", "state bytes", ref="B")], w=12),
        timeseries_panel("Events published (outboxes and indices)",
                  [prom(f"sum by (event_type) (rate(flk_listing_outbox_published_total[{ri}]))",
                        "listing {{event_type}}"),
                   prom(f"sum by (event_type) (rate(flk_notifier_outbox_published_total[{ri}]))",
                        "notifier {{event_type}}", ref="B"),
                   prom(f"sum(rate(flk_continuity_indices_changed_total[{ri}]))", "continuity indices changed",
                        ref="C")],
                  w=12, unit="ops"),
        timeseries_panel("Guardian consent (P3) — minors' listing requests waiting, closed, expired",
                  [prom("sum(flk_listing_guardian_consent_pending)", "waiting for a guardian now"),
                   prom(f"sum by (outcome) (increase(flk_listing_guardian_consent_closed_total[{ri}]))",
                        "closed {{outcome}}", ref="B"),
                   prom(f"sum(increase(flk_listing_consent_expired_total[{ri}]))", "expired by the sweep", ref="C"),
                   prom(f"sum by (result) (increase(flk_listing_consent_expiry_runs_total[{ri}]))",
                        "sweep runs {{result}}", ref="D")],
                  w=24, description="A minor's listing request by one of two guardians waits for the other "
                                    "guardian's listing.consent.v1 (P3). Waiting now: open requests in the register "
                                    "(including any past their expires_on until the sweep runs). Closed: consented, "
                                    "rejected (a rule on the consent's date), refused, expired, superseded, "
                                    "cancelled. The sweep runs every FLK_LISTING_CONSENT_EXPIRY_INTERVAL_S; a "
                                    "failed run is retried at the next interval. Counts only, no patient keys."),
        timeseries_panel("Alert deliveries by outcome (delivery log, per hour)",
                  [sql("SELECT date_trunc('hour', finished_at) AS \"time\", outcome AS metric, count(*) AS value "
                       "FROM notifier.delivery_log WHERE $__timeFilter(finished_at) GROUP BY 1, 2 ORDER BY 1",
                       fmt="time_series")],
                  w=24),
        # the FHIR ingest (services/ingest/adapters/metrics.py): EHRs' Encounters in, visit events out
        timeseries_panel("FHIR ingest — Encounters by outcome (per second)",
                  [prom(f"sum by (outcome) (rate(flk_ingest_encounters_total[{ri}]))", "{{outcome}}")],
                  w=12, unit="ops",
                  description="Each Encounter the EHRs send (alone or in a Bundle): recorded, replaced (a new "
                              "version), cancelled, not_a_contact (planned, ...), unchanged (already ingested), stale "
                              "(an older version), conflict, or refused — invalid, unreadable, forbidden (not the "
                              "sender's care unit) or in a refused Bundle; a refusal is answered with an "
                              "OperationOutcome. Counts only: no patient, unit or sender in the labels."),
        timeseries_panel("FHIR ingest — requests by kind and HTTP status (per second)",
                  [prom(f"sum by (kind, status) (rate(flk_ingest_requests_total[{ri}]))", "{{kind}} {{status}}")],
                  w=12, unit="reqps",
                  description="FHIR requests answered by the gateway: one Encounter, a batch or a transaction "
                              "Bundle, by the HTTP status of the answer (unauthenticated requests are not counted)."),
        timeseries_panel("FHIR ingest — answer time (p95)",
                  [prom(f"histogram_quantile(0.95, sum by (le, kind) (rate(flk_ingest_request_seconds_bucket[{ri}])))",
                        "{{kind}}")],
                  w=12, unit="s"),
        timeseries_panel("FHIR ingest — outbox backlog and visit events published",
                  [prom("sum(flk_ingest_outbox_pending)", "outbox pending"),
                   prom(f"sum by (event_type) (rate(flk_ingest_outbox_published_total[{ri}]))",
                        "published {{event_type}} /s", ref="B")],
                  w=12,
                  description="Visit events written with the Encounters and not yet relayed to Kafka, and the rate "
                              "at which the relay publishes them to ehr.visits.v1, by event type."),
    ]
    return dashboard("flk-operations", "Operations",
                     "Throughput, consumer lag, dead letters, alert delivery and errors of the flk services and "
                     "the FHIR ingest.",
                     panels, [], time_from="now-1h", refresh="10s")


DASHBOARDS = {"region-goals.json": region_goals, "care-unit.json": care_unit, "operations.json": operations}


def render(builder: Callable[[], dash.Dashboard]) -> str:
    return JSONEncoder(ensure_ascii=False, indent=2).encode(builder().build()) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, builder in DASHBOARDS.items():
        (OUT / name).write_text(render(builder), encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
