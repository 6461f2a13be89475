//! Configuration problems, one type for every section: each crate that validates part of the
//! config (policy, labels, `[proxy]`, `[inspection]`, `[[accounts]]`) reports [`Problem`]s —
//! where (a byte span, or a key path the config crate finds in the text), how bad, what — and
//! the config crate turns each into `file:line:column: severity: message` with [`locate`].

#![warn(missing_docs)]

use std::ops::Range;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// Worth saying; the configuration still works.
    Warning,
}

/// One step of a key path: a table key, or an index into an array of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A key of a table.
    Key(String),
    /// An entry of an array (of tables).
    Index(usize),
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A byte range of the source text (from a `toml::Spanned` value).
    Span(Range<usize>),
    /// A key path (`["proxy", "allow_clients"]`, `["accounts", 1, "tenant_id"]`): located at the
    /// key, else at the nearest enclosing table that exists.
    Key(Vec<Step>),
}

/// A problem found in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub at: Location,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, for a human.
    pub message: String,
}

impl Problem {
    /// An error at `at`.
    pub fn error(at: impl Into<Location>, message: impl Into<String>) -> Problem {
        Problem { at: at.into(), severity: Severity::Error, message: message.into() }
    }

    /// A warning at `at`.
    pub fn warning(at: impl Into<Location>, message: impl Into<String>) -> Problem {
        Problem { at: at.into(), severity: Severity::Warning, message: message.into() }
    }

    /// The same problem, its key path under `prefix` (an `[[accounts]]` entry's keys under
    /// `["accounts", i]`).
    pub fn within(mut self, prefix: &[Step]) -> Problem {
        if let Location::Key(path) = &mut self.at {
            let mut full = prefix.to_vec();
            full.append(path);
            *path = full;
        }
        self
    }
}

impl From<Range<usize>> for Location {
    fn from(span: Range<usize>) -> Location {
        Location::Span(span)
    }
}

/// A key path from table keys: `key(&["proxy", "allow_clients"])`.
pub fn key(path: &[&str]) -> Location {
    Location::Key(path.iter().map(|k| Step::Key((*k).to_string())).collect())
}

/// The byte span `at` stands for in `text`: the span itself, or the key's (else the nearest
/// enclosing table's, else the start of the text).
pub fn locate(text: &str, at: &Location) -> Range<usize> {
    match at {
        Location::Span(span) => span.clone(),
        Location::Key(path) => {
            let Ok(root) = toml::de::DeTable::parse(text) else { return 0..0 };
            let mut best = 0..0;
            let mut table: &toml::de::DeTable<'_> = root.get_ref();
            let mut value: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
            for step in path {
                let next = match (step, value.map(|v| v.get_ref())) {
                    (Step::Key(k), None | Some(toml::de::DeValue::Table(_))) => {
                        if let Some(toml::de::DeValue::Table(t)) = value.map(|v| v.get_ref()) {
                            table = t;
                        }
                        table.get_key_value(k.as_str()).map(|(name, v)| (name.span(), v))
                    }
                    (Step::Index(i), Some(toml::de::DeValue::Array(items))) => items.get(*i).map(|v| (v.span(), v)),
                    _ => None,
                };
                let Some((span, v)) = next else { break };
                best = span;
                value = Some(v);
            }
            best
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_at_their_key_not_in_comments() {
        let text = "# [proxy]: a comment naming the table\n[proxy]\n# allow_clients = [] in a comment\nallow_clients = [\"x\"]\n\n[[accounts]]\nname = \"a\"\n[[accounts]]\nname = \"b\"\ntenant_id = \"t\"\n";
        let at = locate(text, &key(&["proxy", "allow_clients"]));
        assert_eq!(&text[at.clone()], "allow_clients");
        let at = locate(text, &Location::Key(vec![Step::Key("accounts".into()), Step::Index(1), Step::Key("tenant_id".into())]));
        assert_eq!(&text[at], "tenant_id");
        // A key that is absent: the table that would hold it.
        let at = locate(text, &key(&["proxy", "listen"]));
        assert_eq!(&text[at], "proxy");
    }
}
