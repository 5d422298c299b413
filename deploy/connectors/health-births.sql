-- 卫健 health: the table its birth-certificate system keeps (an example for the connector configs here).
CREATE SCHEMA IF NOT EXISTS health;
CREATE TABLE IF NOT EXISTS health.birth_certificates (
    id                 bigserial   PRIMARY KEY,
    cert_no            varchar(20) NOT NULL UNIQUE,
    baby_name          text        NOT NULL,
    gender             text        NOT NULL,          -- UNKNOWN, MALE, FEMALE, UNSPECIFIED
    birth_date         date        NOT NULL,
    hospital           text        NOT NULL,
    region_code        char(6)     NOT NULL,
    mother_name        text        NOT NULL,
    mother_id_number   char(18)    NOT NULL,
    father_name        text,
    father_id_number   char(18),
    address            text        NOT NULL,
    birth_weight_grams integer     NOT NULL,
    gestational_weeks  integer     NOT NULL,
    issued_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),  -- set on every insert and update (trigger below)
    is_deleted         boolean     NOT NULL DEFAULT false
);
-- each incremental read is a range scan of this index
CREATE INDEX IF NOT EXISTS birth_certificates_incremental
    ON health.birth_certificates (updated_at, id);

-- The connector reads rows whose updated_at grew since its last position, so every UPDATE
-- must move updated_at, whatever the application writes: this trigger does it.
CREATE OR REPLACE FUNCTION health.birth_certificates_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS birth_certificates_touch ON health.birth_certificates;
CREATE TRIGGER birth_certificates_touch
    BEFORE UPDATE ON health.birth_certificates
    FOR EACH ROW EXECUTE FUNCTION health.birth_certificates_touch();
