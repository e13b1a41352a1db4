-- Open FLK assignments are counted per doctor's list for every command that assigns one (the list's
-- size against its capacity, F6): `count(*)` over the partial index flk_assignment_open_list_idx.
-- PostgreSQL answers that from the index alone only for heap pages its visibility map marks all-visible,
-- which only a VACUUM sets; otherwise it visits every counted row in the table. With the defaults
-- (a table is vacuumed after its rows grew by 20 %, or 20 % of them changed) a register that grows
-- and changes quickly — a region going live, a replay — is mostly unvacuumed: counting a list of 1 500
-- patients read ~1 000 heap pages instead of ~6 index pages (0.9 ms instead of 0.07 ms; at region size
-- 54 s of the replay's PostgreSQL time, docs/benchmarks.md). Vacuumed after 2 % instead: a few
-- tenths of a second of work each time, on a table of a few hundred thousand rows.
ALTER TABLE listing.flk_assignment SET (
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_scale_factor = 0.02
);
