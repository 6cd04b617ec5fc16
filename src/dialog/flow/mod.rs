//! Rules flows: the embedded default bot brain, written as TOML files in `config/flows/`.
//!
//! A flow is a small state machine over named steps. A listening step says something, then
//! waits for the caller; each of its intents (spoken `phrases`/`keywords`, or DTMF `digits`)
//! leads to another step (`goto`) or an `action`: `"repeat"`, `"hangup"`, `"llm"`,
//! `{ department = "billing" }`, `{ number = "+15550100" }`, optionally after its own `say` or
//! `play`. Silence and not-understood answers re-prompt (`no_input`, `no_match`: `say`,
//! `limit`, `then`), a flow caps the caller's turns (`max_turns`, `on_max_turns`), and an
//! optional `[hours]` schedule sends out-of-hours calls to `hours.closed`. A step without
//! intents says its words and goes on with `then`.
//!
//! ```toml
//! greeting = "Thanks for calling."
//! start = "ask"
//! default = true
//!
//! [steps.ask]
//! say = "Billing or sales?"
//! [[steps.ask.intents]]
//! phrases = ["billing"]
//! digits = ["1"]
//! say = "Transferring you to billing."
//! action = { department = "billing" }
//! ```
//!
//! Files are checked when loaded, and every error names the file, the line and the key. See
//! `config/flows/front_desk.toml` for the shipped demo with every key explained.

mod compile;
mod dialog;
mod error;
pub(crate) mod hours;
mod matcher;
mod model;
mod spec;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use dialog::FlowDialog;
pub use error::{FlowError, Located};

use error::{KeyPath, Source};
use model::{FlowDef, normalise_number};

/// `Flow::barge_in_min_speech` when the flow file sets none.
pub const DEFAULT_BARGE_IN_MIN_SPEECH: Duration = Duration::from_millis(300);

/// The shipped demo flow, built in so a server without a flows directory still answers.
const DEMO_FLOW: &str = include_str!("../../../config/flows/front_desk.toml");

/// One checked flow. Cheap to clone; every call gets its own [`FlowDialog`] from [`Flow::start`].
#[derive(Debug, Clone)]
pub struct Flow {
    def: Arc<FlowDef>,
}

impl Flow {
    /// The `name` key, or the file stem.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The file the flow came from, as given to the loader.
    pub fn file(&self) -> &str {
        &self.def.file
    }

    /// A fresh walk through the flow for one call.
    pub fn start(&self) -> FlowDialog {
        FlowDialog::new(Arc::clone(&self.def))
    }

    /// Whether the caller may interrupt the bot (`true` unless the flow says otherwise).
    pub fn barge_in(&self) -> bool {
        self.def.barge_in.unwrap_or(true)
    }

    /// How long the caller must speak over the bot before it stops, so a cough doesn't cut it
    /// off (300 ms unless the flow says otherwise).
    pub fn barge_in_min_speech(&self) -> Duration {
        self.def
            .barge_in_min_speech
            .unwrap_or(DEFAULT_BARGE_IN_MIN_SPEECH)
    }

    /// `barge_in` as written in the flow file; `None` lets the server's `calls.barge_in` decide.
    pub fn barge_in_override(&self) -> Option<bool> {
        self.def.barge_in
    }

    /// `barge_in_min_speech` as written in the flow file; `None` lets the server's setting decide.
    pub fn barge_in_min_speech_override(&self) -> Option<Duration> {
        self.def.barge_in_min_speech
    }

    /// TTS voice; `None` means the provider's default.
    pub fn voice(&self) -> Option<&str> {
        self.def.voice.as_deref()
    }

    /// Every phrase (with its variants) any step listens for: a whole-flow recognizer grammar.
    /// [`crate::dialog::Dialog::expected_phrases`] gives the current step's part of it.
    pub fn stt_phrases(&self) -> &[String] {
        &self.def.stt_phrases
    }

    /// Whether this flow takes calls no other flow claims.
    pub fn is_default(&self) -> bool {
        self.def.default
    }

    /// Called numbers this flow answers, normalised (digits with a leading '+').
    pub fn numbers(&self) -> &[String] {
        &self.def.numbers
    }

    /// Entry points this flow answers.
    pub fn entry_points(&self) -> &[String] {
        &self.def.entry_points
    }
}

/// All flows of a deployment, and which one answers a call.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: Vec<Flow>,
}

impl FlowSet {
    /// Load every `*.toml` in `dir` (one flow per file), in file-name order.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, FlowError> {
        let dir = dir.as_ref();
        let read_dir_err = |source| FlowError::ReadDir {
            dir: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir_err)? {
            let path = entry.map_err(read_dir_err)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(FlowError::Empty {
                dir: dir.to_owned(),
            });
        }
        paths.sort();
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| FlowError::Read {
                path: path.clone(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        Self::from_sources(sources)
    }

    /// The shipped front-desk demo (`config/flows/front_desk.toml`), compiled into the binary.
    pub fn demo() -> Self {
        Self::from_str("config/flows/front_desk.toml", DEMO_FLOW)
            .expect("the built-in demo flow is valid: the flow tests load this same file")
    }

    /// One flow from a string; `name` stands for the file name in errors and is the flow's
    /// name unless the text sets one.
    pub fn from_str(name: &str, text: &str) -> Result<Self, FlowError> {
        Self::from_sources([(name.to_owned(), text.to_owned())])
    }

    /// Flows from `(file, text)` pairs, checked together (unique names, numbers, entry points,
    /// at most one default).
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, FlowError> {
        let mut set = Self::default();
        for (file, text) in sources {
            let src = Source::new(&file, &text);
            let spec = compile::parse(&src)?;
            let stem = Path::new(&file)
                .file_stem()
                .map_or(file.clone(), |s| s.to_string_lossy().into_owned());
            let def = compile::compile(&src, &spec, &stem)?;
            set.check_unique(&src, &def)?;
            tracing::debug!(flow = %def.name, file = %file, steps = def.steps.len(), "flow loaded");
            set.flows.push(Flow { def: Arc::new(def) });
        }
        Ok(set)
    }

    fn check_unique(&self, src: &Source<'_>, def: &FlowDef) -> Result<(), FlowError> {
        let root = KeyPath::root();
        for other in &self.flows {
            let o = &other.def;
            if o.name == def.name {
                let msg = format!("flow \"{}\" is already defined in {}", def.name, o.file);
                return Err(src.error(&root.key("name"), msg));
            }
            if o.default && def.default {
                return Err(src.error(
                    &root.key("default"),
                    format!("{} is already the default flow", o.file),
                ));
            }
            if let Some(i) = def.numbers.iter().position(|n| o.numbers.contains(n)) {
                let msg = format!(
                    "{} is already answered by flow \"{}\" ({})",
                    def.numbers[i], o.name, o.file
                );
                return Err(src.error(&root.key("numbers").index(i), msg));
            }
            if let Some(i) = def
                .entry_points
                .iter()
                .position(|e| o.entry_points.contains(e))
            {
                let msg = format!(
                    "\"{}\" is already answered by flow \"{}\" ({})",
                    def.entry_points[i], o.name, o.file
                );
                return Err(src.error(&root.key("entry_points").index(i), msg));
            }
        }
        Ok(())
    }

    /// The flow for a call: the one listing its entry point, else the one listing the called
    /// number, else the default flow.
    pub fn select(&self, to_number: Option<&str>, entry: Option<&str>) -> Option<&Flow> {
        let by_entry = entry.and_then(|e| {
            self.flows
                .iter()
                .find(|f| f.def.entry_points.iter().any(|x| x == e))
        });
        let by_number = || {
            let number = normalise_number(to_number?);
            self.flows.iter().find(|f| f.def.numbers.contains(&number))
        };
        by_entry
            .or_else(by_number)
            .or_else(|| self.flows.iter().find(|f| f.def.default))
    }

    /// A flow by name.
    pub fn get(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.def.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests;
