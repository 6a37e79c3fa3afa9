//! Reading an entry's fields: typed getters that record an error naming the field, and a final
//! check that rejects every field nobody read.

use std::path::Path;
use std::time::Duration;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::node::Node;

/// Where errors go and what they name.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub entry: Option<String>,
    pub errors: &'a mut Vec<ConfigError>,
}

impl Ctx<'_> {
    pub(crate) fn error(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            entry: self.entry.clone(),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }
}

/// The fields of one table (an entry, or a nested table like `lifecycle`).
pub(crate) struct Fields<'n> {
    prefix: String,
    map: &'n [(String, Node)],
    read: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    pub(crate) fn new(map: &'n [(String, Node)]) -> Fields<'n> {
        Fields { prefix: String::new(), map, read: Vec::new() }
    }

    /// The dotted name of `key` in this table.
    pub(crate) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The raw node of `key`, marking it as known.
    pub(crate) fn node(&mut self, key: &'static str) -> Option<&'n Node> {
        self.read.push(key);
        self.map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn typed<T>(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &'static str,
        expected: &str,
        f: impl FnOnce(&'n Node) -> Option<T>,
    ) -> Option<T> {
        let node = self.node(key)?;
        match f(node) {
            Some(v) => Some(v),
            None => {
                cx.error(Some(&self.path(key)), format!("expected {expected}, found {node}"));
                None
            }
        }
    }

    pub(crate) fn string(&mut self, cx: &mut Ctx<'_>, key: &'static str) -> Option<String> {
        self.typed(cx, key, "a string", |n| match n {
            Node::Str(s) => Some(s.clone()),
            _ => None,
        })
    }

    pub(crate) fn required_string(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &'static str,
        example: &str,
    ) -> Option<String> {
        if self.map.iter().all(|(k, _)| k != key) {
            self.read.push(key);
            cx.error(Some(&self.path(key)), format!("missing (expected e.g. {key} = {example})"));
            return None;
        }
        self.string(cx, key)
    }

    pub(crate) fn bool(&mut self, cx: &mut Ctx<'_>, key: &'static str) -> Option<bool> {
        self.typed(cx, key, "true or false", |n| match n {
            Node::Bool(b) => Some(*b),
            _ => None,
        })
    }

    pub(crate) fn count(&mut self, cx: &mut Ctx<'_>, key: &'static str, min: u64) -> Option<u64> {
        let expected = format!("an integer ≥ {min}");
        self.typed(cx, key, &expected, |n| match n {
            Node::Int(i) if *i >= 0 && *i as u64 >= min => Some(*i as u64),
            _ => None,
        })
    }

    pub(crate) fn number(
        &mut self,
        cx: &mut Ctx<'_>,
        key: &'static str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        let expected = format!("a number from {} to {}", range.start(), range.end());
        self.typed(cx, key, &expected, |n| {
            let x = match n {
                Node::Int(i) => *i as f64,
                Node::Float(x) => *x,
                _ => return None,
            };
            range.contains(&x).then_some(x)
        })
    }

    pub(crate) fn duration(&mut self, cx: &mut Ctx<'_>, key: &'static str) -> Option<Duration> {
        self.typed(cx, key, "a duration like \"500ms\", \"1.5s\", \"2m\" or \"1h\"", |n| match n {
            Node::Str(s) => parse_duration(s),
            Node::Int(0) => Some(Duration::ZERO),
            _ => None,
        })
    }

    pub(crate) fn strings(&mut self, cx: &mut Ctx<'_>, key: &'static str) -> Option<Vec<String>> {
        self.typed(cx, key, "a list of strings", |n| match n {
            Node::List(items) => items
                .iter()
                .map(|i| match i {
                    Node::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }

    /// A nested table, read with its own fields (errors name `key.field`).
    pub(crate) fn table(&mut self, cx: &mut Ctx<'_>, key: &'static str) -> Option<Fields<'n>> {
        let prefix = format!("{}.", self.path(key));
        self.typed(cx, key, "a table", |n| match n {
            Node::Map(kv) => Some(Fields { prefix, map: kv, read: Vec::new() }),
            _ => None,
        })
    }

    /// Records an error for every field that was not read: unknown fields are errors.
    pub(crate) fn finish(self, cx: &mut Ctx<'_>, what: &str) {
        for (k, _) in self.map {
            if !self.read.contains(&k.as_str()) {
                let mut known: Vec<_> = self.read.clone();
                known.sort_unstable();
                known.dedup();
                cx.error(
                    Some(&self.path(k)),
                    format!("unknown field for {what} (expected one of: {})", known.join(", ")),
                );
            }
        }
    }
}
