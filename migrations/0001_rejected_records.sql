-- Records that could not be written, kept with their origin and the reason,
-- so that they can be inspected and replayed (pipeline-admin replay-rejects).
-- One row per record id: a redelivered message updates last_seen and
-- occurrences instead of adding a row.
CREATE TABLE rejected_records (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id text NOT NULL UNIQUE,
    dataset text NOT NULL,
    source_bucket text NOT NULL,
    source_key text NOT NULL,
    source_version_id text,
    source_etag text,
    line bigint NOT NULL,
    record_index bigint,
    -- The record as a JSON object (stages transform and database), or the
    -- start of its raw text (stage parse).
    raw_record text NOT NULL,
    reason text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('parse', 'transform', 'database')),
    target_table text,
    occurrences integer NOT NULL DEFAULT 1,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX rejected_records_dataset_idx ON rejected_records (dataset, id);
