//! Input formats and how an object's format and compression are detected.

use std::fmt;
use std::str::FromStr;

/// Record format of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// CSV (or TSV) with a header row; each row becomes an object of strings.
    Csv,
    /// JSON Lines (NDJSON): one JSON object per line.
    JsonLines,
    /// One JSON array whose elements are objects.
    JsonArray,
}

impl Format {
    /// Returns the name written in the envelope's `format` field and
    /// accepted by the `FORMAT` variable: `csv`, `jsonl` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
            Self::JsonArray => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "jsonl" | "ndjson" => Ok(Self::JsonLines),
            "json" => Ok(Self::JsonArray),
            other => Err(format!("unknown format {other:?}, expected csv, jsonl or json")),
        }
    }
}

/// Format and compression that an object's key and headers announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The record format, when the key suffix or Content-Type names one.
    pub format: Option<Format>,
    /// True for a `.tsv` key or a `text/tab-separated-values` Content-Type.
    pub tab_separated: bool,
    /// True when the key ends in `.gz` or Content-Encoding is `gzip`.
    pub declared_gzip: bool,
}

/// Reads format and compression from the key suffix (`.csv`, `.tsv`,
/// `.jsonl`, `.ndjson`, `.json`, each optionally followed by `.gz`) and,
/// when the suffix names no format, from the Content-Type.
pub(crate) fn detect(key: &str, content_type: Option<&str>, content_encoding: Option<&str>) -> Detected {
    let lower = key.to_ascii_lowercase();
    let gz_suffix = lower.ends_with(".gz") || lower.ends_with(".gzip");
    let stem = lower.strip_suffix(".gz").or_else(|| lower.strip_suffix(".gzip")).unwrap_or(&lower);
    let extension = stem.rsplit_once('.').map(|(_, extension)| extension).filter(|extension| !extension.contains('/'));
    let mut tab_separated = false;
    let mut format = match extension {
        Some("csv") => Some(Format::Csv),
        Some("tsv" | "tab") => {
            tab_separated = true;
            Some(Format::Csv)
        }
        Some("jsonl" | "ndjson") => Some(Format::JsonLines),
        Some("json") => Some(Format::JsonArray),
        _ => None,
    };

    let media_type = content_type.map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if format.is_none() {
        format = match media_type.as_deref() {
            Some("text/csv" | "application/csv") => Some(Format::Csv),
            Some("text/tab-separated-values") => {
                tab_separated = true;
                Some(Format::Csv)
            }
            Some(
                "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" | "application/jsonlines",
            ) => Some(Format::JsonLines),
            Some("application/json" | "text/json") => Some(Format::JsonArray),
            _ => None,
        };
    }

    let gzip_encoding = content_encoding.is_some_and(|encoding| encoding.trim().eq_ignore_ascii_case("gzip"));
    let gzip_type =
        media_type.as_deref().is_some_and(|media| media == "application/gzip" || media == "application/x-gzip");
    Detected { format, tab_separated, declared_gzip: gz_suffix || gzip_encoding || gzip_type }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_cases() {
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<Format>, bool, bool);
        let cases: [Case; 14] = [
            ("incoming/a/x.csv", None, None, Some(Format::Csv), false, false),
            ("incoming/a/x.CSV.GZ", None, None, Some(Format::Csv), false, true),
            ("incoming/a/x.tsv", None, None, Some(Format::Csv), true, false),
            ("incoming/a/x.jsonl", None, None, Some(Format::JsonLines), false, false),
            ("incoming/a/x.ndjson.gz", None, None, Some(Format::JsonLines), false, true),
            ("incoming/a/x.json", None, None, Some(Format::JsonArray), false, false),
            ("incoming/a/x.json.gzip", None, None, Some(Format::JsonArray), false, true),
            ("incoming/a/x", Some("text/csv; charset=utf-8"), None, Some(Format::Csv), false, false),
            ("incoming/a/x", Some("application/x-ndjson"), Some("gzip"), Some(Format::JsonLines), false, true),
            ("incoming/a/x.gz", Some("application/json"), None, Some(Format::JsonArray), false, true),
            ("incoming/a/x.csv", Some("application/json"), None, Some(Format::Csv), false, false),
            ("incoming/a.v1/x", None, None, None, false, false),
            ("incoming/a/x.txt", Some("text/plain"), None, None, false, false),
            ("incoming/a/x.bin", Some("application/gzip"), None, None, false, true),
        ];
        for (key, content_type, encoding, format, tab, gzip) in cases {
            let detected = detect(key, content_type, encoding);
            assert_eq!(detected, Detected { format, tab_separated: tab, declared_gzip: gzip }, "{key}");
        }
    }

    #[test]
    fn format_names_round_trip() {
        for format in [Format::Csv, Format::JsonLines, Format::JsonArray] {
            assert_eq!(format.as_str().parse::<Format>().unwrap(), format);
        }
        assert!("xml".parse::<Format>().is_err());
    }
}
