-- Filials (seed 004: "ska ligga som en underenhet till huvudenheten"): a unit may be a sub-unit of a
-- main unit. Its listings count toward the main unit's listing limit (L7), and a visit there counts as
-- a visit at the main unit for the SKR continuity measure (the continuity worker reads the relation
-- from the same unit register facts). One level only: a main unit is not itself a filial.
ALTER TABLE listing.care_unit
    ADD COLUMN main_unit_id text REFERENCES listing.care_unit DEFERRABLE INITIALLY DEFERRED
        CHECK (main_unit_id IS DISTINCT FROM hsa_id),
    ADD COLUMN filial_kind text
        CHECK (filial_kind IN ('distriktskoterskefilial', 'lakarfilial', 'utokad_filial')),
    ADD CONSTRAINT care_unit_filial_kind_only_for_filials CHECK (filial_kind IS NULL OR main_unit_id IS NOT NULL);

CREATE INDEX care_unit_main_unit_idx ON listing.care_unit (main_unit_id) WHERE main_unit_id IS NOT NULL;
