//! Checking a flow file and turning it into its runtime form. Every error names the file, the
//! line and the key, so the operator can fix a flow without reading this code.

use std::collections::HashMap;

use super::error::{FlowError, KeyPath, Located, Source};
use super::hours::{self, Schedule};
use super::matcher::{self, Matcher};
use super::model::{
    FlowDef, Hours, Intent, Next, Outcome, Reprompt, Step, StepId, StepKind, normalise_number,
};
use super::spec::{ActionSpec, FlowSpec, IntentSpec, OutcomeSpec, RepromptSpec, StepSpec};

const DEFAULT_PREFIXES: [&str; 4] = ["talk to", "connect me to", "i need", "i want"];
const DEFAULT_SUFFIXES: [&str; 1] = ["please"];
const DTMF_DIGITS: &str = "0123456789*#ABCD";

/// Parse the TOML into the typed spec, with serde's errors placed on a line and a key.
pub(crate) fn parse(src: &Source<'_>) -> Result<FlowSpec, FlowError> {
    let de = toml::Deserializer::parse(src.text).map_err(|e| {
        FlowError::Invalid(Located {
            file: src.file.to_owned(),
            line: e.span().map_or(1, |s| src.line_of(s.start)),
            key: String::new(),
            message: e.message().to_owned(),
        })
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = KeyPath::from_serde(e.path());
        let inner = e.into_inner();
        match inner.span() {
            Some(span) => src.error_at(span.start, &path, inner.message()),
            None => src.error(&path, inner.message()),
        }
    })
}

/// Where an outcome is written decides what it may do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Inside a step: everything, including `repeat`.
    Step,
    /// Before any step (out of hours): no `repeat`, there is no question to repeat.
    NoStep,
    /// Ending the call (max turns): a terminal action only.
    Terminal,
}

struct Compiler<'s, 'a> {
    src: &'s Source<'a>,
    ids: HashMap<&'s str, StepId>,
    /// For steps that set none.
    listen_timeout: std::time::Duration,
}

pub(crate) fn compile(src: &Source<'_>, spec: &FlowSpec, stem: &str) -> Result<FlowDef, FlowError> {
    let root = KeyPath::root();
    let ids = spec
        .steps
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), StepId(i)))
        .collect();
    let c = Compiler {
        src,
        ids,
        listen_timeout: spec.listen_timeout,
    };

    let name = spec.name.clone().unwrap_or_else(|| stem.to_owned());
    if name.trim().is_empty() {
        return Err(src.error(&root.key("name"), "must not be empty"));
    }
    let start = c.step_id(&root.key("start"), &spec.start)?;
    if !(0.0..=1.0).contains(&spec.min_confidence) {
        return Err(src.error(&root.key("min_confidence"), "must be between 0 and 1"));
    }
    if spec.max_turns == 0 {
        return Err(src.error(&root.key("max_turns"), "must be at least 1"));
    }
    if spec.listen_timeout.is_zero() {
        return Err(src.error(&root.key("listen_timeout"), "must be longer than zero"));
    }
    c.text(&root.key("greeting"), spec.greeting.as_deref())?;
    c.text(&root.key("voice"), spec.voice.as_deref())?;

    let mut numbers = Vec::new();
    for (i, n) in spec.numbers.iter().enumerate() {
        let norm = normalise_number(n);
        if norm.is_empty() {
            return Err(src.error(
                &root.key("numbers").index(i),
                format!("\"{n}\" is not a phone number"),
            ));
        }
        numbers.push(norm);
    }
    for (i, e) in spec.entry_points.iter().enumerate() {
        if e.trim().is_empty() {
            return Err(src.error(&root.key("entry_points").index(i), "must not be empty"));
        }
    }

    let affixes = |key: &str,
                   given: &Option<Vec<String>>,
                   default: &[&str]|
     -> Result<Vec<String>, FlowError> {
        match given {
            None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, a)| match matcher::grammar_form(a) {
                    f if f.is_empty() => Err(src.error(&root.key(key).index(i), "has no words")),
                    f => Ok(f),
                })
                .collect(),
        }
    };
    let prefixes = affixes(
        "variant_prefixes",
        &spec.variant_prefixes,
        &DEFAULT_PREFIXES,
    )?;
    let suffixes = affixes(
        "variant_suffixes",
        &spec.variant_suffixes,
        &DEFAULT_SUFFIXES,
    )?;

    let no_input = c.reprompt(&root.key("no_input"), spec.no_input.as_ref())?;
    let no_match = c.reprompt(&root.key("no_match"), spec.no_match.as_ref())?;
    let mut steps = Vec::with_capacity(spec.steps.len());
    for (step_name, step) in &spec.steps {
        let path = root.key("steps").key(step_name);
        steps.push(c.step(
            &path,
            step_name,
            step,
            (&no_input, &no_match),
            (&prefixes, &suffixes),
        )?);
    }
    check_loops(src, &steps)?;

    let on_max_turns = match &spec.on_max_turns {
        Some(o) => c.outcome(&root.key("on_max_turns"), o, Ctx::Terminal)?,
        None => Outcome::hangup(),
    };
    let hours = spec
        .hours
        .as_ref()
        .map(|h| c.hours(&root.key("hours"), h))
        .transpose()?;

    let stt_phrases = unique(steps.iter().flat_map(|s| match &s.kind {
        StepKind::Listen { phrases, .. } => phrases.as_slice(),
        StepKind::Then(_) => &[],
    }));

    Ok(FlowDef {
        name,
        file: src.file.to_owned(),
        default: spec.default,
        numbers,
        entry_points: spec
            .entry_points
            .iter()
            .map(|e| e.trim().to_owned())
            .collect(),
        voice: spec.voice.clone(),
        barge_in: spec.barge_in,
        barge_in_min_speech: spec.barge_in_min_speech,
        min_confidence: spec.min_confidence,
        max_turns: spec.max_turns,
        on_max_turns,
        greeting: spec.greeting.clone(),
        start,
        steps,
        hours,
        stt_phrases,
    })
}

impl Compiler<'_, '_> {
    fn step_id(&self, path: &KeyPath, name: &str) -> Result<StepId, FlowError> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| self.src.error(path, format!("unknown step \"{name}\"")))
    }

    /// Optional text: absent is fine, present must say something.
    fn text(&self, path: &KeyPath, text: Option<&str>) -> Result<(), FlowError> {
        match text {
            Some(t) if t.trim().is_empty() => Err(self.src.error(path, "must not be empty")),
            _ => Ok(()),
        }
    }

    fn play(&self, path: &KeyPath, play: Option<&str>) -> Result<(), FlowError> {
        let Some(p) = play else { return Ok(()) };
        let file = std::path::Path::new(p);
        if !p.to_ascii_lowercase().ends_with(".wav") {
            return Err(self.src.error(path, format!("\"{p}\" is not a .wav file")));
        }
        if file.is_absolute()
            || file
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(self.src.error(
                path,
                format!("\"{p}\" must be relative to the config directory, without \"..\""),
            ));
        }
        Ok(())
    }

    fn outcome(&self, path: &KeyPath, spec: &OutcomeSpec, ctx: Ctx) -> Result<Outcome, FlowError> {
        self.text(&path.key("say"), spec.say.as_deref())?;
        self.play(&path.key("play"), spec.play.as_deref())?;
        let next = match (&spec.goto, &spec.action) {
            (Some(_), Some(_)) => {
                return Err(self
                    .src
                    .error(&path.key("goto"), "`goto` and `action` cannot both be set"));
            }
            (None, None) => return Err(self.src.error(path, "needs `goto` (a step) or `action`")),
            (Some(_), None) if ctx == Ctx::Terminal => {
                return Err(self.src.error(
                    &path.key("goto"),
                    "must end the call: use `action` (hangup, llm, department, number)",
                ));
            }
            (Some(step), None) => Next::Goto(self.step_id(&path.key("goto"), step)?),
            (None, Some(action)) => {
                let at = path.key("action");
                match action {
                    ActionSpec::Repeat if ctx != Ctx::Step => {
                        return Err(self
                            .src
                            .error(&at, "`repeat` needs a step whose question to repeat"));
                    }
                    ActionSpec::Repeat => Next::Repeat,
                    ActionSpec::Hangup => Next::Hangup,
                    ActionSpec::Llm => Next::Llm,
                    ActionSpec::Department(d) if d.trim().is_empty() => {
                        return Err(self.src.error(&at, "empty department"));
                    }
                    ActionSpec::Number(n) if normalise_number(n).is_empty() && !n.contains('@') => {
                        return Err(self
                            .src
                            .error(&at, format!("\"{n}\" is not a phone number or SIP URI")));
                    }
                    ActionSpec::Department(d) => Next::Department(d.trim().to_owned()),
                    ActionSpec::Number(n) => Next::Number(n.trim().to_owned()),
                }
            }
        };
        Ok(Outcome {
            say: spec.say.clone(),
            play: spec.play.clone(),
            next,
        })
    }

    fn reprompt(
        &self,
        path: &KeyPath,
        spec: Option<&RepromptSpec>,
    ) -> Result<Option<Reprompt>, FlowError> {
        let Some(spec) = spec else { return Ok(None) };
        self.text(&path.key("say"), spec.say.as_deref())?;
        let then = match &spec.then {
            Some(o) => self.outcome(&path.key("then"), o, Ctx::Step)?,
            None => Outcome::hangup(),
        };
        Ok(Some(Reprompt {
            say: spec.say.clone(),
            limit: spec.limit,
            then,
        }))
    }

    fn step(
        &self,
        path: &KeyPath,
        name: &str,
        spec: &StepSpec,
        defaults: (&Option<Reprompt>, &Option<Reprompt>),
        affixes: (&[String], &[String]),
    ) -> Result<Step, FlowError> {
        self.text(&path.key("say"), spec.say.as_deref())?;
        self.play(&path.key("play"), spec.play.as_deref())?;
        let kind = if spec.intents.is_empty() {
            let Some(then) = &spec.then else {
                return Err(self.src.error(
                    path,
                    "a step needs `intents` (to wait for the caller) or `then`",
                ));
            };
            let listening_keys = [
                ("no_input", spec.no_input.is_some()),
                ("no_match", spec.no_match.is_some()),
                ("listen_timeout", spec.listen_timeout.is_some()),
            ];
            for (key, set) in listening_keys {
                if set {
                    return Err(self.src.error(
                        &path.key(key),
                        "only a step with `intents` waits for the caller",
                    ));
                }
            }
            // No question was asked here, so there is nothing to `repeat`.
            StepKind::Then(self.outcome(&path.key("then"), then, Ctx::NoStep)?)
        } else {
            if spec.then.is_some() {
                return Err(self.src.error(
                    &path.key("then"),
                    "a step with `intents` waits for the caller; `then` is for steps without",
                ));
            }
            let timeout = spec.listen_timeout.unwrap_or(self.listen_timeout);
            if timeout.is_zero() {
                return Err(self
                    .src
                    .error(&path.key("listen_timeout"), "must be longer than zero"));
            }
            let default_reprompt = || Reprompt {
                say: None,
                limit: 2,
                then: Outcome::hangup(),
            };
            let no_input = self.reprompt(&path.key("no_input"), spec.no_input.as_ref())?;
            let no_match = self.reprompt(&path.key("no_match"), spec.no_match.as_ref())?;
            let intents = self.intents(&path.key("intents"), &spec.intents, affixes)?;
            StepKind::Listen {
                timeout,
                phrases: unique(intents.iter().flat_map(|i| &i.grammar)),
                intents,
                no_input: no_input
                    .or_else(|| defaults.0.clone())
                    .unwrap_or_else(default_reprompt),
                no_match: no_match
                    .or_else(|| defaults.1.clone())
                    .unwrap_or_else(default_reprompt),
            }
        };
        Ok(Step {
            name: name.to_owned(),
            say: spec.say.clone(),
            play: spec.play.clone(),
            kind,
        })
    }

    fn intents(
        &self,
        path: &KeyPath,
        specs: &[IntentSpec],
        (prefixes, suffixes): (&[String], &[String]),
    ) -> Result<Vec<Intent>, FlowError> {
        let mut digit_owner: HashMap<char, usize> = HashMap::new();
        let mut phrase_owner: HashMap<Vec<String>, usize> = HashMap::new();
        let mut out = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = path.index(i);
            if spec.phrases.is_empty() && spec.keywords.is_empty() && spec.digits.is_empty() {
                return Err(self
                    .src
                    .error(&at, "an intent needs `phrases`, `keywords` or `digits`"));
            }
            let mut matcher = Matcher::default();
            let mut grammar = Vec::new();
            for (j, phrase) in spec.phrases.iter().enumerate() {
                let words = matcher::words(phrase);
                if words.is_empty() {
                    return Err(self.src.error(&at.key("phrases").index(j), "has no words"));
                }
                if let Some(other) = phrase_owner.insert(words.clone(), i) {
                    let msg = format!("\"{phrase}\" is already a phrase of {path}[{other}]");
                    return Err(self.src.error(&at.key("phrases").index(j), msg));
                }
                matcher.phrases.push(words);
                grammar.push(matcher::grammar_form(phrase));
            }
            for (j, keyword) in spec.keywords.iter().enumerate() {
                let at = at.key("keywords").index(j);
                match matcher::words(keyword).as_slice() {
                    [word] => matcher.keywords.push(word.clone()),
                    _ => {
                        return Err(self.src.error(
                            &at,
                            format!("\"{keyword}\" is not one word (use `phrases`)"),
                        ));
                    }
                }
                grammar.push(matcher::grammar_form(keyword));
            }
            let mut digits = Vec::new();
            for (j, d) in spec.digits.iter().enumerate() {
                let at = at.key("digits").index(j);
                let mut chars = d.chars();
                let digit = match (chars.next().map(|c| c.to_ascii_uppercase()), chars.next()) {
                    (Some(c), None) if DTMF_DIGITS.contains(c) => c,
                    _ => {
                        return Err(self.src.error(
                            &at,
                            format!("\"{d}\" is not one DTMF digit (0-9, *, #, A-D)"),
                        ));
                    }
                };
                if let Some(other) = digit_owner.insert(digit, i) {
                    return Err(self.src.error(
                        &at,
                        format!("digit \"{digit}\" is already used by {path}[{other}]"),
                    ));
                }
                digits.push(digit);
            }
            if spec.variants {
                grammar = grammar
                    .iter()
                    .flat_map(|p| matcher::variants(p, prefixes, suffixes))
                    .collect();
            }
            let name = spec
                .name
                .clone()
                .or_else(|| spec.phrases.first().cloned())
                .or_else(|| spec.keywords.first().cloned())
                .unwrap_or_else(|| format!("digit {}", spec.digits.join("/")));
            let outcome = self.outcome(&at, &spec.outcome(), Ctx::Step)?;
            out.push(Intent {
                name,
                matcher,
                digits,
                outcome,
                grammar,
            });
        }
        Ok(out)
    }

    fn hours(&self, path: &KeyPath, spec: &super::spec::HoursSpec) -> Result<Hours, FlowError> {
        let tz = hours::time_zone(&spec.time_zone)
            .map_err(|m| self.src.error(&path.key("time_zone"), m))?;
        if spec.open.is_empty() {
            return Err(self.src.error(&path.key("open"), "lists no opening hours"));
        }
        let open = spec
            .open
            .iter()
            .enumerate()
            .map(|(i, r)| {
                hours::parse_range(r).map_err(|m| self.src.error(&path.key("open").index(i), m))
            })
            .collect::<Result<_, _>>()?;
        let closed_dates = spec
            .closed_dates
            .iter()
            .enumerate()
            .map(|(i, d)| {
                hours::parse_date(d)
                    .map_err(|m| self.src.error(&path.key("closed_dates").index(i), m))
            })
            .collect::<Result<_, _>>()?;
        let closed = self.outcome(&path.key("closed"), &spec.closed, Ctx::NoStep)?;
        Ok(Hours {
            schedule: Schedule::new(tz, open, closed_dates),
            closed,
        })
    }
}

/// The distinct phrases, in first-seen order (done once here so the call never dedupes).
fn unique<'p>(phrases: impl IntoIterator<Item = &'p String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    phrases
        .into_iter()
        .filter(|p| seen.insert(p.as_str()))
        .cloned()
        .collect()
}

/// Steps that do not wait for the caller must not `goto` round in a circle: the call would
/// talk to itself forever.
fn check_loops(src: &Source<'_>, steps: &[Step]) -> Result<(), FlowError> {
    for (first, step) in steps.iter().enumerate() {
        let mut seen = vec![first];
        let mut current = step;
        while let StepKind::Then(Outcome {
            next: Next::Goto(next),
            ..
        }) = &current.kind
        {
            current = &steps[next.0];
            if !matches!(current.kind, StepKind::Then(_)) {
                break;
            }
            if seen.contains(&next.0) {
                let names: Vec<&str> = seen
                    .iter()
                    .chain([&next.0])
                    .map(|&i| steps[i].name.as_str())
                    .collect();
                let path = KeyPath::root()
                    .key("steps")
                    .key(&step.name)
                    .key("then")
                    .key("goto");
                let msg = format!(
                    "steps {} go round without waiting for the caller",
                    names.join(" -> ")
                );
                return Err(src.error(&path, msg));
            }
            seen.push(next.0);
        }
    }
    Ok(())
}
