//! The reader kit every table's parser shares: [`Cx`] collects problems and turns byte spans
//! into lines, [`Section`] is a table being read (it remembers the keys asked for, so the rest
//! are reported unknown), and typed getters (string, integer, number, rate, duration, boolean,
//! table, choice) report a wrong type or an out-of-range value under the full dotted key.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use crate::scenario::{parse_duration_ns, syntax, Problem};

/// Collected problems plus the source, to turn byte spans into lines.
pub(super) struct Cx<'s> {
    pub(super) src: &'s str,
    pub(super) problems: Vec<Problem>,
}

/// One value found under a key.
#[derive(Clone, Copy)]
pub(super) struct Field<'t> {
    pub(super) item: &'t Item,
    pub(super) line: Option<usize>,
}

/// A table being read; remembers which keys were asked for so the rest can be reported unknown.
pub(super) struct Section<'t> {
    pub(super) path: String,
    pub(super) table: &'t dyn TableLike,
    pub(super) known: Vec<&'static str>,
}

impl<'s> Cx<'s> {
    pub(super) fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        let start = span?.start.min(self.src.len());
        Some(
            self.src.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        )
    }

    pub(super) fn problem(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            key: syntax::clip(key),
            message: message.into(),
        });
    }

    pub(super) fn field<'t>(
        &mut self,
        section: &mut Section<'t>,
        key: &'static str,
    ) -> Option<Field<'t>> {
        section.known.push(key);
        let (k, item) = section.table.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        let line = self.line_of(k.span()).or_else(|| self.line_of(item.span()));
        Some(Field { item, line })
    }

    pub(super) fn finish(&mut self, section: Section<'_>) {
        for (key, _) in section.table.iter() {
            if section.known.contains(&key) {
                continue;
            }
            let line = section
                .table
                .get_key_value(key)
                .and_then(|(k, item)| self.line_of(k.span()).or_else(|| self.line_of(item.span())));
            let full = section.child(key);
            let expected = section.known.join(", ");
            self.problem(
                line,
                &full,
                format!("unknown key; expected one of: {expected}"),
            );
        }
    }

    pub(super) fn type_problem(&mut self, f: Field<'_>, key: &str, want: &str) {
        let found = describe(f.item);
        self.problem(f.line, key, format!("expected {want}, found {found}"));
    }

    pub(super) fn string<'t>(
        &mut self,
        s: &mut Section<'t>,
        key: &'static str,
    ) -> Option<(&'t str, Field<'t>)> {
        let f = self.field(s, key)?;
        match f.item.as_str() {
            Some(v) => Some((v, f)),
            None => {
                self.type_problem(f, &s.child(key), "a string");
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        s: &mut Section<'_>,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let f = self.field(s, key)?;
        let path = s.child(key);
        match f.item.as_integer() {
            Some(v) if v < min => {
                self.problem(f.line, &path, format!("must be at least {min} (got {v})"));
                None
            }
            Some(v) if v > max => {
                self.problem(f.line, &path, format!("must be at most {max} (got {v})"));
                None
            }
            Some(v) => Some(v),
            None => {
                self.type_problem(f, &path, "an integer");
                None
            }
        }
    }

    pub(super) fn number<'t>(
        &mut self,
        s: &mut Section<'t>,
        key: &'static str,
    ) -> Option<(f64, Field<'t>)> {
        let f = self.field(s, key)?;
        match number_of(f.item.as_value()) {
            Some(v) if v.is_finite() => Some((v, f)),
            Some(v) => {
                self.problem(
                    f.line,
                    &s.child(key),
                    format!("must be a finite number (got {v})"),
                );
                None
            }
            None => {
                self.type_problem(f, &s.child(key), "a finite number");
                None
            }
        }
    }

    pub(super) fn positive_rate(&mut self, s: &mut Section<'_>, key: &'static str) -> Option<f64> {
        let path = s.child(key);
        let (v, f) = self.number(s, key)?;
        self.check_rate(v, f.line, &path)
    }

    pub(super) fn check_rate(&mut self, v: f64, line: Option<usize>, path: &str) -> Option<f64> {
        if v <= 0.0 {
            self.problem(line, path, format!("must be greater than 0 (got {v})"));
            None
        } else if v > 10_000_000.0 {
            self.problem(
                line,
                path,
                format!("must be at most 10000000 per second (got {v})"),
            );
            None
        } else {
            Some(v)
        }
    }

    pub(super) fn duration(
        &mut self,
        s: &mut Section<'_>,
        key: &'static str,
    ) -> Option<(u64, Option<usize>)> {
        let f = self.field(s, key)?;
        let path = s.child(key);
        self.duration_value(f, &path).map(|ns| (ns, f.line))
    }

    pub(super) fn duration_value(&mut self, f: Field<'_>, path: &str) -> Option<u64> {
        match f.item.as_str() {
            Some(text) => match parse_duration_ns(text) {
                Ok(ns) => Some(ns),
                Err(msg) => {
                    self.problem(f.line, path, msg);
                    None
                }
            },
            None => {
                self.type_problem(f, path, "a duration string like \"30s\" or \"250ms\"");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, s: &mut Section<'_>, key: &'static str) -> Option<bool> {
        let f = self.field(s, key)?;
        match f.item.as_bool() {
            Some(v) => Some(v),
            None => {
                self.type_problem(f, &s.child(key), "true or false");
                None
            }
        }
    }

    pub(super) fn table<'t>(
        &mut self,
        s: &mut Section<'t>,
        key: &'static str,
    ) -> Option<(Section<'t>, Field<'t>)> {
        let f = self.field(s, key)?;
        match f.item.as_table_like() {
            Some(table) => Some((
                Section {
                    path: s.child(key),
                    table,
                    known: Vec::new(),
                },
                f,
            )),
            None => {
                self.type_problem(f, &s.child(key), "a table");
                None
            }
        }
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        s: &mut Section<'_>,
        key: &'static str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let path = s.child(key);
        let (text, f) = self.string(s, key)?;
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, v)) => Some(*v),
            None => {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.problem(
                    f.line,
                    &path,
                    format!(
                        "unknown value \"{text}\"; expected one of {}",
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }
}

impl Section<'_> {
    pub(super) fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

pub(super) fn number_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Integer(i) => Some(*i.value() as f64),
        Value::Float(f) => Some(*f.value()),
        _ => None,
    }
}

pub(super) fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
        Item::Value(Value::Array(_)) => "an array",
    }
}
