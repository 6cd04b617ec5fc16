//! Load-time errors of flow files, each pointing at a file, a line and a key.
//!
//! Flow files are written by hand, so an error must say where to look: `file line N: key: what`.
//! Keys are paths like `steps.ask.intents[0].goto`; lines come from the TOML spans, looked up in
//! a `toml_edit` document of the same text (the typed structs stay free of span wrappers).

use std::fmt;
use std::path::PathBuf;

/// Why a flow (or the set of flows) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The flows directory could not be listed.
    #[error("{}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A flow file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The directory holds no `*.toml` file.
    #[error("{}: no flow files (*.toml)", dir.display())]
    Empty { dir: PathBuf },
    /// A flow file is not valid TOML, or its contents are wrong.
    #[error("{0}")]
    Invalid(Located),
}

/// One error at a place in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file as given (a path, or a name for flows parsed from a string).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The key path, e.g. `steps.ask.intents[0].goto`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: ", self.file, self.line)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path inside a flow file, built while validating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let segs = path
            .iter()
            .filter_map(|seg| match seg {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                Segment::Unknown => None,
            })
            .collect();
        Self(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The source text of one flow file, able to turn key paths and byte offsets into lines.
pub(crate) struct Source<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
    /// `None` only when the text is not TOML at all (then the syntax error is reported first).
    doc: Option<toml_edit::Document<&'a str>>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            doc: toml_edit::Document::parse(text).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The line where `path` is written: the deepest part of the path found in the document
    /// (a key's own line when it exists, else its parent's).
    pub(crate) fn line_of_path(&self, path: &KeyPath) -> usize {
        let Some(doc) = &self.doc else { return 1 };
        let mut best: Option<usize> = doc.as_table().span().map(|s| s.start);
        let mut item: Option<&toml_edit::Item> = None;
        let mut table: Option<&dyn toml_edit::TableLike> = Some(doc.as_table());
        for seg in &path.0 {
            match seg {
                Seg::Key(key) => {
                    let Some((k, v)) = table.and_then(|t| t.get_key_value(key)) else {
                        break;
                    };
                    if let Some(span) = k.span().or_else(|| v.span()) {
                        best = Some(span.start);
                    }
                    item = Some(v);
                }
                Seg::Index(index) => {
                    let next = match item {
                        Some(toml_edit::Item::ArrayOfTables(a)) => a
                            .get(*index)
                            .map(|t| (t.span(), Some(t as &dyn toml_edit::TableLike))),
                        Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => a
                            .get(*index)
                            .map(|v| (v.span(), v.as_inline_table().map(|t| t as _))),
                        _ => None,
                    };
                    let Some((span, inner)) = next else { break };
                    if let Some(span) = span {
                        best = Some(span.start);
                    }
                    table = inner;
                    item = None;
                    continue;
                }
            }
            table = item.and_then(|i| i.as_table_like());
        }
        best.map_or(1, |offset| self.line_of(offset))
    }

    /// An error at `path`, its line looked up in the document.
    pub(crate) fn error(&self, path: &KeyPath, message: impl Into<String>) -> FlowError {
        FlowError::Invalid(Located {
            file: self.file.to_owned(),
            line: self.line_of_path(path),
            key: path.to_string(),
            message: message.into(),
        })
    }

    /// An error at a known byte offset.
    pub(crate) fn error_at(
        &self,
        offset: usize,
        path: &KeyPath,
        message: impl Into<String>,
    ) -> FlowError {
        FlowError::Invalid(Located {
            file: self.file.to_owned(),
            line: self.line_of(offset),
            key: path.to_string(),
            message: message.into(),
        })
    }
}
