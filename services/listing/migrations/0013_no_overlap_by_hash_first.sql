-- The no-overlap exclusion constraints (0001, rebuilt in 0012) cost most of the register's insert time:
-- each insert or period change descends their GiST indexes, and btree_gist's text keys make every step
-- dear (a text key's penalty is computed against every entry of each node on the way down). Inserting
-- 300 000 listings 200 at a time into a scratch copy of the table took 3.7 s without the constraint,
-- 18.1 s with it, and 7.9 s with the index led by a 64-bit hash of the person's key (docs/benchmarks.md).
--
-- So each index is now led by `hashtextextended(patient_key, 0)`, followed by the columns it had. The
-- constraint is exactly what it was: equal keys have equal hashes, and the key itself (and the list) is
-- still compared, so two persons whose hashes collide are told apart and never refused for each other.
-- The hash only steers the index's descent. Queries by person or list still go to the btree indexes.
-- Rebuilding each index locks its table for the seconds it takes.
ALTER TABLE listing.listing DROP CONSTRAINT listing_no_overlap;
ALTER TABLE listing.listing ADD CONSTRAINT listing_no_overlap
    EXCLUDE USING gist (hashtextextended(patient_key, 0) WITH =, (patient_key || '') WITH =, period WITH &&);

ALTER TABLE listing.flk_assignment DROP CONSTRAINT flk_assignment_no_overlap;
ALTER TABLE listing.flk_assignment ADD CONSTRAINT flk_assignment_no_overlap
    EXCLUDE USING gist (hashtextextended(patient_key, 0) WITH =, (patient_key || '') WITH =,
                        (list_id || '') WITH =, period WITH &&);
