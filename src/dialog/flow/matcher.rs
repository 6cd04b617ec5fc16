//! Matching what the caller said to a step's intents, and the phrases the recognizer should
//! expect.
//!
//! Both sides are normalised the same way (lowercase, punctuation dropped, apostrophes removed
//! inside words) so "Billing, please!" and "billing please" are the same words. A phrase matches
//! when all its words appear in order in the transcript (other words may sit between them:
//! "talk to an agent" matches "agent" phrases and "talk to agent" alike); a keyword matches when
//! the word appears anywhere. The longest match wins, a phrase beating a keyword of equal length,
//! and on a tie the intent listed first.

/// Lowercase words of `text`, punctuation removed.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            // "don't" and "dont" are the same word to a matcher; recognizers disagree on which.
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The form given to a speech recognizer's grammar: lowercase, apostrophes kept (dictionaries
/// spell "that's" with one), other punctuation gone.
pub(crate) fn grammar_form(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .to_lowercase();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What one intent listens for, normalised.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    pub(crate) phrases: Vec<Vec<String>>,
    pub(crate) keywords: Vec<String>,
}

/// How well a matcher fits a transcript; larger is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Score {
    words: usize,
    /// A phrase beats a keyword of the same length.
    phrase: bool,
}

impl Matcher {
    pub(crate) fn score(&self, transcript: &[String]) -> Option<Score> {
        let phrases = self
            .phrases
            .iter()
            .filter(|p| is_subsequence(p, transcript))
            .map(|p| Score {
                words: p.len(),
                phrase: true,
            });
        let keywords = self
            .keywords
            .iter()
            .filter(|k| transcript.contains(k))
            .map(|_| Score {
                words: 1,
                phrase: false,
            });
        phrases.chain(keywords).max()
    }
}

/// All of `needle`'s words occur in `hay` in the same order.
fn is_subsequence(needle: &[String], hay: &[String]) -> bool {
    let mut hay = hay.iter();
    needle.iter().all(|w| hay.any(|h| h == w))
}

/// The index of the best-matching matcher, the first one on a tie.
pub(crate) fn best<'a>(
    matchers: impl IntoIterator<Item = &'a Matcher>,
    transcript: &[String],
) -> Option<usize> {
    let mut best: Option<(usize, Score)> = None;
    for (i, m) in matchers.into_iter().enumerate() {
        if let Some(score) = m.score(transcript)
            && best.is_none_or(|(_, b)| score > b)
        {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// `phrase`, then `prefix phrase` for each prefix and `phrase suffix` for each suffix.
pub(crate) fn variants(phrase: &str, prefixes: &[String], suffixes: &[String]) -> Vec<String> {
    let mut out = vec![phrase.to_owned()];
    out.extend(prefixes.iter().map(|p| format!("{p} {phrase}")));
    out.extend(suffixes.iter().map(|s| format!("{phrase} {s}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(phrases: &[&str], keywords: &[&str]) -> Matcher {
        Matcher {
            phrases: phrases.iter().map(|p| words(p)).collect(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn normalises_case_punctuation_and_apostrophes() {
        assert_eq!(words("  Billing, PLEASE!  "), ["billing", "please"]);
        assert_eq!(words("I don't know"), ["i", "dont", "know"]);
        assert_eq!(words("that\u{2019}s right."), ["thats", "right"]);
        assert!(words("?!  ...").is_empty());
        assert_eq!(
            grammar_form("That's right, Billing!"),
            "that's right billing"
        );
    }

    #[test]
    fn phrase_words_must_appear_in_order() {
        let agent = m(&["talk to agent"], &[]);
        assert!(
            agent
                .score(&words("can I talk to an agent please"))
                .is_some()
        );
        assert!(agent.score(&words("agent talk to")).is_none());
        assert!(agent.score(&words("talk to someone")).is_none());
    }

    #[test]
    fn longest_match_wins_then_phrase_over_keyword_then_first() {
        let intents = [
            m(&["sales"], &[]),
            m(&["sales invoice"], &[]),
            m(&[], &["refund"]),
            m(&["refund"], &[]),
        ];
        assert_eq!(best(&intents, &words("a sales invoice")), Some(1));
        assert_eq!(best(&intents, &words("sales")), Some(0));
        assert_eq!(best(&intents, &words("I want a refund")), Some(3));
        assert_eq!(best(&intents, &words("hello there")), None);
        let tied = [m(&["billing"], &[]), m(&["sales"], &[])];
        assert_eq!(best(&tied, &words("billing or sales")), Some(0));
    }

    #[test]
    fn variants_put_prefixes_and_suffixes_around_the_phrase() {
        let v = variants("billing", &["talk to".into()], &["please".into()]);
        assert_eq!(v, ["billing", "talk to billing", "billing please"]);
    }
}
