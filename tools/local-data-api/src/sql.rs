//! Named parameters in SQL text: finds each `:name` outside string literals,
//! quoted identifiers, comments and `::` casts, so that the statement can be
//! sent to PostgreSQL with positional `$n` placeholders.

/// One piece of a parsed statement: SQL text to copy as it is, or a reference
/// to a named parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// SQL text without parameters.
    Text(String),
    /// A `:name` reference, without the colon.
    Parameter(String),
}

/// A statement split into text and named-parameter references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Splits `sql` into text and `:name` references.
    ///
    /// A colon is not a parameter when it is part of `::`, or inside a
    /// string literal (`'...'`, `E'...'` with backslash escapes, `$tag$...$tag$`),
    /// a quoted identifier (`"..."`), or a comment (`-- ...` to the end of the
    /// line, `/* ... */`, which PostgreSQL lets nest). An unterminated literal
    /// or comment runs to the end of the text; PostgreSQL then reports it.
    pub fn parse(sql: &str) -> Self {
        let bytes = sql.as_bytes();
        let mut parts = Vec::new();
        let mut text_start = 0;
        let mut i = 0;

        while i < bytes.len() {
            match bytes[i] {
                b'\'' => {
                    let escapes =
                        i > 0 && matches!(bytes[i - 1], b'E' | b'e') && (i < 2 || !is_identifier_byte(bytes[i - 2]));
                    i = skip_quoted(bytes, i, b'\'', escapes);
                }
                b'"' => i = skip_quoted(bytes, i, b'"', false),
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |offset| i + offset + 1);
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
                b'$' => i = skip_dollar_quoted(sql, i),
                b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
                b':' if bytes.get(i + 1).is_some_and(|&b| is_identifier_start(b)) => {
                    let name_start = i + 1;
                    let mut end = name_start;
                    while end < bytes.len() && is_identifier_byte(bytes[end]) {
                        end += 1;
                    }
                    if text_start < i {
                        parts.push(Part::Text(sql[text_start..i].to_owned()));
                    }
                    parts.push(Part::Parameter(sql[name_start..end].to_owned()));
                    text_start = end;
                    i = end;
                }
                _ => i += 1,
            }
        }

        if text_start < sql.len() {
            parts.push(Part::Text(sql[text_start..].to_owned()));
        }
        Self { parts }
    }

    /// Returns the pieces of the statement, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Distinct parameter names in order of first use.
    pub fn parameter_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Parameter(name) = part
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Writes the statement with each parameter replaced by the text that
    /// `placeholder` returns for its name.
    pub fn render(&self, mut placeholder: impl FnMut(&str) -> String) -> String {
        let mut sql = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => sql.push_str(text),
                Part::Parameter(name) => sql.push_str(&placeholder(name)),
            }
        }
        sql
    }
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_identifier_byte(byte: u8) -> bool {
    is_identifier_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

/// Returns the index after the closing `quote` of the literal opened at
/// `start`. A doubled quote is an escaped quote; with `backslash_escapes`,
/// so is a backslash followed by any byte.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if backslash_escapes && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips a dollar-quoted string opened at `start` (`$$` or `$tag$`), or only
/// the `$` when it opens none, as in the positional parameter `$1` or inside
/// an identifier such as `a$b`.
fn skip_dollar_quoted(sql: &str, start: usize) -> usize {
    let bytes = sql.as_bytes();
    if start > 0 && is_identifier_byte(bytes[start - 1]) {
        return start + 1;
    }
    let mut end = start + 1;
    while end < bytes.len() && bytes[end] != b'$' {
        let byte = bytes[end];
        let valid = if end == start + 1 { is_identifier_start(byte) } else { is_identifier_byte(byte) && byte != b'$' };
        if !valid {
            return start + 1;
        }
        end += 1;
    }
    if end >= bytes.len() {
        return start + 1;
    }
    let tag = &sql[start..=end];
    match sql[end + 1..].find(tag) {
        Some(offset) => end + 1 + offset + tag.len(),
        None => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(sql: &str) -> String {
        let template = Template::parse(sql);
        let names: Vec<String> = template.parameter_names().into_iter().map(str::to_owned).collect();
        template.render(|name| format!("${}", names.iter().position(|n| n == name).map_or(0, |i| i + 1)))
    }

    #[test]
    fn rewrite_table() {
        let cases = [
            ("select :a", "select $1"),
            ("select :a, :b, :a", "select $1, $2, $1"),
            ("insert into t (x, y) values (:x_1,:Y)", "insert into t (x, y) values ($1,$2)"),
            ("select :a::int", "select $1::int"),
            ("select x::text from t where y = :y", "select x::text from t where y = $1"),
            ("select ':a'", "select ':a'"),
            ("select 'it''s :a', :b", "select 'it''s :a', $1"),
            ("select E'\\' :a', :b", "select E'\\' :a', $1"),
            ("select e'\\\\', :b", "select e'\\\\', $1"),
            ("select $$ :a $$, :b", "select $$ :a $$, $1"),
            ("select $fn$ :a $x$ $fn$, :b", "select $fn$ :a $x$ $fn$, $1"),
            ("select \":a\" from t where c = :c", "select \":a\" from t where c = $1"),
            ("select 1 -- :a\n, :b", "select 1 -- :a\n, $1"),
            ("select /* :a /* :nested */ :still */ :b", "select /* :a /* :nested */ :still */ $1"),
            ("select arr[1:2] from t", "select arr[1:2] from t"),
            ("select $1, :a", "select $1, $1"),
            ("select a$b, :c", "select a$b, $1"),
            ("select ':", "select ':"),
            ("select :", "select :"),
            ("select '2024-01-01 10:00:00'::timestamp", "select '2024-01-01 10:00:00'::timestamp"),
        ];
        for (sql, expected) in cases {
            assert_eq!(placeholders(sql), expected, "for {sql:?}");
        }
    }

    #[test]
    fn parameter_names_in_first_use_order() {
        let template = Template::parse("update t set a = :b where c = :a and d = :b");
        assert_eq!(template.parameter_names(), ["b", "a"]);
    }

    #[test]
    fn unterminated_literal_hides_rest() {
        let template = Template::parse("select 'abc :a");
        assert!(template.parameter_names().is_empty());
    }

    #[test]
    fn parts_split_text_and_names() {
        let template = Template::parse("a :x b");
        assert_eq!(
            template.parts(),
            [Part::Text("a ".to_owned()), Part::Parameter("x".to_owned()), Part::Text(" b".to_owned())]
        );
    }
}
