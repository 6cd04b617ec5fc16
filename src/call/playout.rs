//! The playout clock: which bot audio the caller has actually heard.
//!
//! Audio goes out ahead of real time, so "sent" is not "heard". After each chunk of an
//! utterance (and every few hundred ms within long chunks) the call sends a named mark; the
//! far end echoes a mark when the audio before it has played, or, after a `clear`, when it was
//! dropped. Marks sent before a `clear` and echoed after it are therefore counted as cleared,
//! not played. Everything here is plain bookkeeping: no I/O, no clock.

use std::collections::VecDeque;

/// An utterance's id, unique within a call.
pub type UtteranceId = u32;

#[derive(Debug)]
struct Utterance {
    id: UtteranceId,
    text: String,
    /// Samples handed to the pacer so far.
    queued: u64,
    /// Samples confirmed played by echoed marks.
    played: u64,
    /// Marks sent and not yet echoed.
    outstanding: u32,
    /// All audio has been queued (synthesis finished).
    complete: bool,
    /// Cut by barge-in: remaining echoes are "cleared".
    cut: bool,
}

/// An utterance that has ended, for the event log and the dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: UtteranceId,
    pub text: String,
    pub heard: String,
    pub cut: bool,
    pub played_samples: u64,
}

/// What an echoed mark meant.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkEcho {
    pub played: bool,
    /// Set when this echo completed an utterance.
    pub finished: Option<Finished>,
}

#[derive(Debug, Default)]
pub struct Playout {
    utterances: VecDeque<Utterance>,
    next_id: UtteranceId,
}

impl Playout {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking a new utterance.
    pub fn begin(&mut self, text: String) -> UtteranceId {
        self.next_id += 1;
        let id = self.next_id;
        self.utterances.push_back(Utterance {
            id,
            text,
            queued: 0,
            played: 0,
            outstanding: 0,
            complete: false,
            cut: false,
        });
        id
    }

    /// Records `samples` more audio of utterance `id` handed to the pacer.
    pub fn queued(&mut self, id: UtteranceId, samples: u64) {
        if let Some(u) = self.get_mut(id) {
            u.queued += samples;
        }
    }

    /// More text for an utterance that is still being produced (an LLM answer, sentence by
    /// sentence).
    pub fn append_text(&mut self, id: UtteranceId, text: &str) {
        if let Some(u) = self.get_mut(id) {
            if !u.text.is_empty() {
                u.text.push(' ');
            }
            u.text.push_str(text.trim());
        }
    }

    /// The name of a mark placed now, after everything queued so far for `id`.
    pub fn mark(&mut self, id: UtteranceId) -> Option<String> {
        let u = self.get_mut(id)?;
        u.outstanding += 1;
        Some(format!("u{}:{}", u.id, u.queued))
    }

    /// Synthesis of `id` is finished: no more audio will be queued for it.
    pub fn complete(&mut self, id: UtteranceId) {
        if let Some(u) = self.get_mut(id) {
            u.complete = true;
        }
    }

    /// The utterance currently being spoken (the oldest unfinished one).
    pub fn current(&self) -> Option<UtteranceId> {
        self.utterances.iter().find(|u| !u.cut).map(|u| u.id)
    }

    pub fn is_speaking(&self) -> bool {
        self.utterances.iter().any(|u| !u.cut)
    }

    /// Handles an echoed mark. Unknown names (not ours) return `None`.
    pub fn on_echo(&mut self, name: &str) -> Option<MarkEcho> {
        let (id, at) = parse_mark(name)?;
        let index = self.utterances.iter().position(|u| u.id == id)?;
        let u = &mut self.utterances[index];
        u.outstanding = u.outstanding.saturating_sub(1);
        let played = !u.cut;
        if played {
            u.played = u.played.max(at);
        }
        let done = u.outstanding == 0 && (u.cut || (u.complete && u.played >= u.queued));
        let finished = if done && !u.cut {
            let u = self.utterances.remove(index).expect("index was just found");
            Some(Finished { heard: u.text.clone(), id: u.id, text: u.text, cut: false, played_samples: u.played })
        } else {
            if done {
                // A cut utterance is reported when it is cut; now its bookkeeping can go.
                self.utterances.remove(index);
            }
            None
        };
        Some(MarkEcho { played, finished })
    }

    /// Barge-in: every utterance in flight is cut. Returns each with the part that was heard
    /// (estimated from the confirmed played samples, cut back to a word boundary).
    pub fn cut_all(&mut self) -> Vec<Finished> {
        let mut out = Vec::new();
        self.utterances.retain_mut(|u| {
            if u.cut {
                return u.outstanding > 0;
            }
            u.cut = true;
            let heard = heard_prefix(&u.text, u.played, u.queued, u.complete);
            out.push(Finished { id: u.id, text: u.text.clone(), heard, cut: true, played_samples: u.played });
            u.outstanding > 0
        });
        out
    }

    /// An utterance with no audio at all (synthesis failed or produced nothing) is finished
    /// at once.
    pub fn finish_empty(&mut self, id: UtteranceId) -> Option<Finished> {
        let index = self.utterances.iter().position(|u| u.id == id && u.queued == 0 && u.outstanding == 0)?;
        let u = self.utterances.remove(index)?;
        Some(Finished { id: u.id, text: u.text, heard: String::new(), cut: false, played_samples: 0 })
    }

    fn get_mut(&mut self, id: UtteranceId) -> Option<&mut Utterance> {
        self.utterances.iter_mut().find(|u| u.id == id)
    }
}

fn parse_mark(name: &str) -> Option<(UtteranceId, u64)> {
    let (id, at) = name.strip_prefix('u')?.split_once(':')?;
    Some((id.parse().ok()?, at.parse().ok()?))
}

/// The words of `text` the caller heard, assuming speech is spread evenly over the audio.
/// Rounds down to whole words: a word counts as heard only once all of it was played.
pub fn heard_prefix(text: &str, played: u64, queued: u64, complete: bool) -> String {
    if played == 0 || queued == 0 {
        return String::new();
    }
    if complete && played >= queued {
        return text.to_string();
    }
    // While synthesis is still running the total length is unknown; the queued audio is a
    // lower bound, so the estimate errs toward "heard less".
    let fraction = (played as f64 / queued as f64).min(1.0);
    let fraction = if complete { fraction } else { fraction * 0.9 };
    let cut = (text.len() as f64 * fraction) as usize;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if i > cut {
            break;
        }
        if c.is_whitespace() {
            end = i;
        }
    }
    if cut >= text.len() {
        end = text.len();
    }
    text[..end].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn played_in_full_finishes_on_last_echo() {
        let mut p = Playout::new();
        let id = p.begin("Hello there.".into());
        p.queued(id, 1600);
        let m1 = p.mark(id).unwrap();
        p.queued(id, 1600);
        let m2 = p.mark(id).unwrap();
        p.complete(id);
        assert!(p.is_speaking());
        let e1 = p.on_echo(&m1).unwrap();
        assert!(e1.played && e1.finished.is_none());
        let e2 = p.on_echo(&m2).unwrap();
        let f = e2.finished.unwrap();
        assert_eq!((f.heard.as_str(), f.cut, f.played_samples), ("Hello there.", false, 3200));
        assert!(!p.is_speaking());
    }

    #[test]
    fn marks_echoed_after_a_cut_count_as_cleared() {
        let mut p = Playout::new();
        let text = "one two three four five six seven eight nine ten";
        let id = p.begin(text.into());
        let mut marks = Vec::new();
        for _ in 0..10 {
            p.queued(id, 800);
            marks.push(p.mark(id).unwrap());
        }
        p.complete(id);
        // Four tenths played and confirmed.
        for m in &marks[..4] {
            assert!(p.on_echo(m).unwrap().played);
        }
        let cut = p.cut_all();
        assert_eq!(cut.len(), 1);
        assert!(cut[0].cut);
        assert_eq!(cut[0].played_samples, 3200);
        // 40% of the text, to a word boundary: "one two three four" is 18 of 48 chars.
        assert_eq!(cut[0].heard, "one two three four");
        assert!(!p.is_speaking());
        for m in &marks[4..] {
            let echo = p.on_echo(m).unwrap();
            assert!(!echo.played && echo.finished.is_none());
        }
        assert!(p.utterances.is_empty(), "bookkeeping released after the last echo");
    }

    #[test]
    fn foreign_and_malformed_marks_are_ignored() {
        let mut p = Playout::new();
        p.begin("x".into());
        assert_eq!(p.on_echo("greeting"), None);
        assert_eq!(p.on_echo("u9:100"), None);
        assert_eq!(p.on_echo("u1:abc"), None);
    }

    #[test]
    fn heard_prefix_rounds_down_to_words() {
        assert_eq!(heard_prefix("hello world", 0, 100, true), "");
        assert_eq!(heard_prefix("hello world", 100, 100, true), "hello world");
        assert_eq!(heard_prefix("hello world", 60, 100, true), "hello");
        assert_eq!(heard_prefix("hello world", 30, 100, true), "");
    }

    #[test]
    fn empty_utterance_finishes_at_once() {
        let mut p = Playout::new();
        let id = p.begin("silence".into());
        p.complete(id);
        let f = p.finish_empty(id).unwrap();
        assert_eq!(f.heard, "");
        assert!(!p.is_speaking());
    }
}
