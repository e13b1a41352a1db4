-- The person's name next to the person id in the re-identification vault (issue 16): shown with
-- the personnummer to the listing unit's own staff, never for a protected identity. Encrypted like
-- the person id (AES-GCM, FLK_IDENTITY_VAULT_KEY; the patient key and the field are the
-- authenticated data). NULL: no name known (the listing import and the population register adapter
-- write ids only).
ALTER TABLE platform.person_identity ADD COLUMN name_ciphertext bytea;
