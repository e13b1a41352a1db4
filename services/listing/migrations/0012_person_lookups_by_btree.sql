-- Reading a person's listings and FLK assignments (the listing service's decision slice: every command
-- loads its persons' records) used the GiST indexes of the no-overlap exclusion constraints (0001), not
-- the btree indexes on patient_key: the planner estimates both at one row and the same cost, and
-- takes the GiST. A GiST (btree_gist) lookup of one person's rows costs 0.05–0.09 ms, the btree's
-- 0.003–0.006 ms: loading 21 persons took 3.7 ms instead of 0.8 ms (a synthetic register of 100 000
-- persons; at region size the load was a quarter of the replay's PostgreSQL time, docs/benchmarks.md).
--
-- The constraints stay exactly what they were (no two listings of one person overlap; no two
-- assignments of one person to one list overlap); their indexes are built on `patient_key || ''` (and
-- `list_id || ''`), the same values, which a query on the columns themselves cannot use: lookups by
-- person or list go to the btree indexes. Rebuilding each index locks its table for the seconds it takes.
ALTER TABLE listing.listing DROP CONSTRAINT listing_no_overlap;
ALTER TABLE listing.listing ADD CONSTRAINT listing_no_overlap
    EXCLUDE USING gist ((patient_key || '') WITH =, period WITH &&);

ALTER TABLE listing.flk_assignment DROP CONSTRAINT flk_assignment_patient_key_list_id_period_excl;
ALTER TABLE listing.flk_assignment ADD CONSTRAINT flk_assignment_no_overlap
    EXCLUDE USING gist ((patient_key || '') WITH =, (list_id || '') WITH =, period WITH &&);
