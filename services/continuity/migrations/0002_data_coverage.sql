-- Continuity: from which date visit data are complete, per region and (where a unit's source
-- differs) per care unit. Set by `flk ehr import` (the history extract's start) or by
-- configuration (`flk continuity coverage set`); read when snapshots and goal comparisons are
-- made, so every figure says whether its window is complete. care_unit_id '' = the whole region.
CREATE TABLE continuity.data_coverage (
    region_code   text        NOT NULL,
    care_unit_id  text        NOT NULL DEFAULT '',
    complete_from date        NOT NULL,   -- first day whose visits are all present (inclusive)
    source        text        NOT NULL CHECK (source IN ('history-import', 'configuration', 'simulator')),
    note          text        NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_code, care_unit_id)
);

GRANT SELECT ON continuity.data_coverage TO flk_reader;
