-- US airports, from vega_datasets' airports.csv.
CREATE TABLE airports (
    record_id text PRIMARY KEY,
    iata text NOT NULL,
    name text NOT NULL,
    city text,
    state text,
    country text NOT NULL,
    latitude double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    source_bucket text NOT NULL,
    source_key text NOT NULL,
    source_version text,
    source_line bigint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX airports_iata_idx ON airports (iata);
