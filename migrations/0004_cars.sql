-- Car models of 1970 to 1982, from vega_datasets' cars.json (a JSON array).
CREATE TABLE cars (
    record_id text PRIMARY KEY,
    name text NOT NULL,
    miles_per_gallon numeric(4, 1),
    cylinders integer NOT NULL CHECK (cylinders > 0),
    displacement_cu_in numeric(6, 1),
    horsepower integer,
    weight_lbs integer,
    acceleration_s numeric(4, 1),
    model_year date NOT NULL,
    origin text NOT NULL,
    source_bucket text NOT NULL,
    source_key text NOT NULL,
    source_version text,
    source_line bigint NOT NULL,
    source_index bigint,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
