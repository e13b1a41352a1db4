-- The notifier's reporting surface: totals that tools (the main job's summary, reports) and the
-- dashboards' read-only role read instead of the notifier's own tables, so the tables can change
-- without a reader silently counting nothing. No patient identifiers: counts only.

CREATE FUNCTION notifier.care_gap_totals()
RETURNS TABLE (open_gaps bigint, opened_gaps bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*) FILTER (WHERE resolved_at IS NULL), count(*) FROM notifier.care_gap
$$;

-- alerts planned at or after `since` (NULL: all), and their deliveries by channel and status
CREATE FUNCTION notifier.alert_totals(since timestamptz)
RETURNS TABLE (alerts_planned bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM notifier.alert WHERE since IS NULL OR planned_at >= since
$$;

CREATE FUNCTION notifier.delivery_totals(since timestamptz)
RETURNS TABLE (channel text, status text, deliveries bigint)
LANGUAGE sql STABLE AS $$
    SELECT d.channel, d.status, count(*)
      FROM notifier.alert_delivery d JOIN notifier.alert a USING (alert_id)
     WHERE since IS NULL OR a.planned_at >= since
     GROUP BY 1, 2
$$;

GRANT EXECUTE ON FUNCTION notifier.care_gap_totals(), notifier.alert_totals(timestamptz),
    notifier.delivery_totals(timestamptz) TO flk_reader;
