"""The main job's alert figures are this run's: a re-run on the same database does not count the
alerts and deliveries of earlier runs (it once printed "deliveries sent: 70 … mail catcher received 0")."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from tools.mainjob.goals import read_alerts

pytestmark = pytest.mark.integration


async def _alert(conn, planned_at: datetime, statuses: dict[str, str]) -> None:
    alert_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notifier.alert (alert_id, care_unit_id, kind, unit_name, gap_count, summary, planned_at) "
        "VALUES ($1, 'SE2321000016-VC000001', 'new_gaps', 'VC Test', 1, '{}'::jsonb, $2)", alert_id, planned_at)
    for channel, status in statuses.items():
        await conn.execute("INSERT INTO notifier.alert_delivery (alert_id, channel, status) VALUES ($1, $2, $3)",
                           alert_id, channel, status)


async def test_a_rerun_counts_only_the_alerts_planned_since_it_started(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        run_started = datetime.now(timezone.utc)
        earlier = run_started - timedelta(hours=1)
        for _ in range(3):  # an earlier run's alerts, all delivered
            await _alert(conn, earlier, {"email": "delivered", "teams": "delivered"})
        await _alert(conn, run_started + timedelta(seconds=1), {"email": "delivered", "teams": "pending"})
        this_run = await read_alerts(conn, since=run_started)
        all_time = await read_alerts(conn)
    finally:
        await conn.close()
    assert (this_run.alerts_planned, this_run.delivered, this_run.pending) == (1, {"email": 1}, 1)
    assert (all_time.alerts_planned, all_time.delivered) == (4, {"email": 4, "teams": 3})
