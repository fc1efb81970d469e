-- Palmer penguins, from palmerpenguins' penguins-raw.csv (one row per bird sampled).
CREATE TABLE penguins (
    record_id text PRIMARY KEY,
    study_name text NOT NULL,
    sample_number integer NOT NULL,
    species text NOT NULL,
    region text,
    island text NOT NULL,
    stage text,
    individual_id text NOT NULL,
    clutch_completion boolean,
    egg_date date,
    culmen_length_mm numeric(5, 1) CHECK (culmen_length_mm > 0),
    culmen_depth_mm numeric(5, 1) CHECK (culmen_depth_mm > 0),
    flipper_length_mm integer CHECK (flipper_length_mm > 0),
    body_mass_g integer CHECK (body_mass_g > 0),
    sex text CHECK (sex IN ('MALE', 'FEMALE')),
    delta_15n numeric(8, 5),
    delta_13c numeric(8, 5),
    comments text,
    source_bucket text NOT NULL,
    source_key text NOT NULL,
    source_version text,
    source_line bigint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX penguins_species_idx ON penguins (species);
