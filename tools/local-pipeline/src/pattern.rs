//! EventBridge event pattern matching, for the rules that route S3
//! "Object Created" events to functions.
//!
//! A pattern is a JSON object whose leaves are arrays of matchers. An event
//! matches when every leaf has a matcher that accepts the event's value at
//! that path, or any element of it when that value is an array. Supported
//! matchers: exact values, `prefix`, `suffix`, `equals-ignore-case`,
//! `anything-but`, `exists`, `wildcard` and `numeric`, as described in the
//! EventBridge user guide under "Content filtering in Amazon EventBridge
//! event patterns". `cidr` and `$or` are not supported and are rejected by
//! [`validate`].

use serde_json::Value;

/// Checks that `pattern` uses only supported matchers. The error names the
/// path and the unsupported matcher.
pub fn validate(pattern: &Value) -> Result<(), String> {
    validate_at(pattern, "")
}

/// Returns true when `event` matches `pattern`.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(name, rule)| {
        let value = event.get(name);
        match rule {
            Value::Object(_) => match value {
                Some(inner @ Value::Object(_)) => matches(rule, inner),
                // A nested pattern over a missing object matches only when
                // every leaf inside accepts a missing value.
                _ => matches(rule, &Value::Object(serde_json::Map::new())),
            },
            Value::Array(matchers) => leaf_matches(matchers, value),
            _ => false,
        }
    })
}

fn leaf_matches(matchers: &[Value], value: Option<&Value>) -> bool {
    let values: Vec<&Value> = match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item) => vec![item],
        None => Vec::new(),
    };
    matchers.iter().any(|matcher| match matcher {
        Value::Object(operator) if operator.contains_key("exists") => {
            let wanted = operator
                .get("exists")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            wanted != values.is_empty()
        }
        _ => values.iter().any(|value| matcher_accepts(matcher, value)),
    })
}

fn matcher_accepts(matcher: &Value, value: &Value) -> bool {
    let Value::Object(operator) = matcher else {
        return matcher == value;
    };
    let Some((name, argument)) = operator.iter().next() else {
        return false;
    };
    let text = value.as_str();
    match name.as_str() {
        "prefix" => match argument {
            Value::Object(inner) => inner
                .get("equals-ignore-case")
                .and_then(Value::as_str)
                .zip(text)
                .is_some_and(|(prefix, text)| {
                    text.to_lowercase().starts_with(&prefix.to_lowercase())
                }),
            _ => argument
                .as_str()
                .zip(text)
                .is_some_and(|(prefix, text)| text.starts_with(prefix)),
        },
        "suffix" => match argument {
            Value::Object(inner) => inner
                .get("equals-ignore-case")
                .and_then(Value::as_str)
                .zip(text)
                .is_some_and(|(suffix, text)| {
                    text.to_lowercase().ends_with(&suffix.to_lowercase())
                }),
            _ => argument
                .as_str()
                .zip(text)
                .is_some_and(|(suffix, text)| text.ends_with(suffix)),
        },
        "equals-ignore-case" => argument
            .as_str()
            .zip(text)
            .is_some_and(|(wanted, text)| wanted.eq_ignore_ascii_case(text)),
        "wildcard" => argument
            .as_str()
            .zip(text)
            .is_some_and(|(glob, text)| wildcard(glob, text)),
        "anything-but" => match argument {
            Value::Array(excluded) => !excluded.contains(value),
            Value::Object(_) => !matcher_accepts(argument, value),
            other => other != value,
        },
        "numeric" => value
            .as_f64()
            .is_some_and(|number| numeric(argument, number)),
        _ => false,
    }
}

/// Matches `text` against a glob where `*` stands for any run of characters.
fn wildcard(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return glob == text;
    }
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn numeric(argument: &Value, number: f64) -> bool {
    let Some(terms) = argument.as_array() else {
        return false;
    };
    terms.chunks(2).all(|pair| {
        let (Some(operator), Some(bound)) = (
            pair.first().and_then(Value::as_str),
            pair.get(1).and_then(Value::as_f64),
        ) else {
            return false;
        };
        match operator {
            "<" => number < bound,
            "<=" => number <= bound,
            "=" => number == bound,
            ">" => number > bound,
            ">=" => number >= bound,
            _ => false,
        }
    })
}

fn validate_at(pattern: &Value, at: &str) -> Result<(), String> {
    let Some(fields) = pattern.as_object() else {
        return Err(format!("{} must be an object", display_path(at)));
    };
    for (name, rule) in fields {
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if name.starts_with('$') {
            return Err(format!(
                "{path}: the operator {name} is not supported locally"
            ));
        }
        match rule {
            Value::Object(_) => validate_at(rule, &path)?,
            Value::Array(matchers) => {
                for matcher in matchers {
                    if let Value::Object(operator) = matcher {
                        let known = [
                            "prefix",
                            "suffix",
                            "equals-ignore-case",
                            "anything-but",
                            "exists",
                            "wildcard",
                            "numeric",
                        ];
                        match operator.keys().next() {
                            Some(key) if operator.len() == 1 && known.contains(&key.as_str()) => {}
                            Some(key) => {
                                return Err(format!(
                                    "{path}: the matcher {key} is not supported locally"
                                ));
                            }
                            None => return Err(format!("{path}: empty matcher")),
                        }
                    }
                }
            }
            _ => return Err(format!("{path} must be an array of matchers or an object")),
        }
    }
    Ok(())
}

fn display_path(at: &str) -> &str {
    if at.is_empty() { "the pattern" } else { at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(bucket: &str, key: &str) -> Value {
        json!({"source": "aws.s3", "detail-type": "Object Created",
               "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 120}}})
    }

    fn s3_rule(prefix_matcher: Value) -> Value {
        json!({"source": ["aws.s3"], "detail-type": ["Object Created"],
               "detail": {"bucket": {"name": ["input"]}, "object": {"key": [prefix_matcher]}}})
    }

    #[test]
    fn matcher_cases() {
        let cases = [
            (json!({"prefix": "incoming/"}), "incoming/a.csv", true),
            (
                json!({"prefix": "incoming/"}),
                "archive/incoming/a.csv",
                false,
            ),
            (
                json!({"prefix": {"equals-ignore-case": "INCOMING/"}}),
                "incoming/a.csv",
                true,
            ),
            (json!({"suffix": ".csv"}), "incoming/a.csv", true),
            (json!({"suffix": ".csv"}), "incoming/a.json", false),
            (
                json!({"wildcard": "incoming/*/*.csv"}),
                "incoming/penguins/a.csv",
                true,
            ),
            (
                json!({"wildcard": "incoming/*/*.csv"}),
                "incoming/a.json",
                false,
            ),
            (
                json!({"anything-but": {"prefix": "archive/"}}),
                "incoming/a.csv",
                true,
            ),
            (
                json!({"anything-but": {"prefix": "archive/"}}),
                "archive/a.csv",
                false,
            ),
            (json!({"anything-but": ["x", "y"]}), "x", false),
            (
                json!({"equals-ignore-case": "Incoming/A.CSV"}),
                "incoming/a.csv",
                true,
            ),
            (json!("incoming/a.csv"), "incoming/a.csv", true),
            (json!("incoming/a.csv"), "incoming/b.csv", false),
        ];
        for (matcher, key, expected) in cases {
            assert_eq!(
                matches(&s3_rule(matcher.clone()), &event("input", key)),
                expected,
                "{matcher} against {key}"
            );
        }
    }

    #[test]
    fn other_bucket_does_not_match() {
        assert!(!matches(
            &s3_rule(json!({"prefix": "incoming/"})),
            &event("other", "incoming/a.csv")
        ));
    }

    #[test]
    fn exists_and_numeric() {
        let rule = json!({"detail": {"object": {"size": [{"numeric": [">", 0, "<=", 120]}], "etag": [{"exists": false}]}}});
        assert!(matches(&rule, &event("input", "k")));
        let rule = json!({"detail": {"object": {"etag": [{"exists": true}]}}});
        assert!(!matches(&rule, &event("input", "k")));
    }

    #[test]
    fn array_values_match_any_element() {
        let rule = json!({"resources": ["arn:aws:s3:::input"]});
        assert!(matches(
            &rule,
            &json!({"resources": ["arn:aws:s3:::other", "arn:aws:s3:::input"]})
        ));
    }

    #[test]
    fn validate_rejects_unsupported() {
        assert!(validate(&s3_rule(json!({"prefix": "incoming/"}))).is_ok());
        let error = validate(&json!({"detail": {"source-ip-address": [{"cidr": "127.0.0.0/8"}]}}))
            .unwrap_err();
        assert_eq!(
            error,
            "detail.source-ip-address: the matcher cidr is not supported locally"
        );
        assert!(validate(&json!({"source": "aws.s3"})).is_err());
    }
}
