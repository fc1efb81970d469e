-- Daily weather in Seattle 2012 to 2015, from vega_datasets' seattle-weather.csv.
CREATE TABLE seattle_weather (
    record_id text PRIMARY KEY,
    observed_on date NOT NULL,
    precipitation_mm numeric(5, 1) CHECK (precipitation_mm >= 0),
    temp_max_c numeric(4, 1),
    temp_min_c numeric(4, 1),
    wind_m_s numeric(4, 1) CHECK (wind_m_s >= 0),
    weather text NOT NULL CHECK (weather IN ('drizzle', 'fog', 'rain', 'snow', 'sun')),
    source_bucket text NOT NULL,
    source_key text NOT NULL,
    source_version text,
    source_line bigint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX seattle_weather_observed_on_idx ON seattle_weather (observed_on);
