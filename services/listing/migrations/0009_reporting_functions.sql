-- The listing register's reporting surface for guardian consent (P3): what tools (the main job's
-- summary) and the dashboards' read-only role read instead of listing.pending_listing itself.

-- consent requests made on or after `since`, by outcome ('pending' while open), and of the open
-- ones how many are past their expiry date on `today` (the sweep closes them)
CREATE FUNCTION listing.guardian_consent_totals(since date, today date)
RETURNS TABLE (outcome text, requests bigint, past_expiry bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(outcome, 'pending'), count(*),
           count(*) FILTER (WHERE outcome IS NULL AND expires_on <= today)
      FROM listing.pending_listing
     WHERE requested_on >= since
     GROUP BY 1
$$;

GRANT EXECUTE ON FUNCTION listing.guardian_consent_totals(date, date) TO flk_reader;
