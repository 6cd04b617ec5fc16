//! Cuts a stream of model tokens into sentences for text-to-speech, as they arrive.
//!
//! Speech can start as soon as the first sentence is complete, long before the model has
//! finished its answer. A sentence ends at `.`, `?`, `!`, `;` or `…` followed by whitespace
//! (closing quotes and brackets stay with it), and at every newline. A period after a known
//! abbreviation ("Dr."), an initial ("J."), a dotted word ("e.g.") or a lone list number ("1.")
//! does not end a sentence, and neither does one inside a number ("3.5"): only whitespace after
//! the period decides, so a token that ends in "3." waits for the next one.
//!
//! A sentence that runs past `max_chars` is cut at its last clause break (`,` or `:` followed
//! by whitespace); past twice that, at its last space, so TTS never waits for a run-on answer.
//!
//! Sans-IO and synchronous: the LLM task pushes text and forwards what comes out.

/// Abbreviations whose period does not end a sentence (compared without the period,
/// case-insensitively). Ones that are also common words ("no", "sun", "min") are left out:
/// a missed break only delays speech, a false one splits a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "nr", "inc", "ltd",
    "corp", "dept", "approx", "ave", "rd", "blvd", "apt", "jan", "feb", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "lt", "sgt", "capt",
];

/// Characters that close a sentence and stay with it ("Really?" she asked).
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '?' | '!' | ';' | '…' | '。' | '？' | '！')
}

#[derive(Debug)]
pub struct SentenceSplitter {
    buf: String,
    /// Byte offset in `buf` up to which no sentence end was found; scanning resumes here.
    scanned: usize,
    max_chars: usize,
}

impl SentenceSplitter {
    /// `max_chars` is the length after which a clause break ends a sentence (at least 20).
    pub fn new(max_chars: usize) -> Self {
        Self {
            buf: String::new(),
            scanned: 0,
            max_chars: max_chars.max(20),
        }
    }

    /// Adds model text; returns the sentences it completed, in order.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = self.next_end() {
            self.emit(end, &mut out);
        }
        out
    }

    /// The end of the answer: whatever is left is the last sentence.
    pub fn finish(&mut self) -> Option<String> {
        let rest = speakable(&std::mem::take(&mut self.buf));
        self.scanned = 0;
        (!rest.is_empty()).then_some(rest)
    }

    /// Text received but not yet emitted.
    pub fn pending(&self) -> &str {
        &self.buf
    }

    fn emit(&mut self, end: usize, out: &mut Vec<String>) {
        let sentence = speakable(&self.buf[..end]);
        self.buf.drain(..end);
        self.scanned = 0;
        if !sentence.is_empty() {
            out.push(sentence);
        }
    }

    /// The byte offset just past the next complete sentence, if there is one.
    fn next_end(&mut self) -> Option<usize> {
        if let Some(end) = self.sentence_end() {
            return Some(end);
        }
        if self.buf.chars().count() > self.max_chars {
            return self.long_sentence_cut();
        }
        None
    }

    fn sentence_end(&mut self) -> Option<usize> {
        let buf = self.buf.as_str();
        let mut chars = buf[self.scanned..]
            .char_indices()
            .map(|(i, c)| (i + self.scanned, c))
            .peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\n' {
                return Some(i + 1);
            }
            if !is_terminator(c) {
                continue;
            }
            // Take the whole run: "?!", "...", and closers after it.
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if is_terminator(d) || is_closer(d) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            match buf[end..].chars().next() {
                // Not decidable yet: "3." may become "3.5". Look again when more text comes.
                None => {
                    self.scanned = i;
                    return None;
                }
                Some(next) if next.is_whitespace() => {
                    if c == '.' && end == i + 1 && !self.period_ends_sentence(i) {
                        continue;
                    }
                    return Some(end);
                }
                // CJK full stops are not followed by spaces.
                Some(_) if matches!(c, '。' | '？' | '！') => return Some(end),
                Some(_) => {}
            }
        }
        self.scanned = buf.len();
        None
    }

    /// Whether the `.` at byte `dot` ends a sentence, judging by the word before it.
    fn period_ends_sentence(&self, dot: usize) -> bool {
        let before = &self.buf[..dot];
        let word_start = before
            .rfind(|c: char| c.is_whitespace() || c == '(' || c == '"')
            .map_or(0, |i| i + 1);
        let word = &before[word_start..];
        if word.is_empty() {
            return true;
        }
        // An initial ("J. Smith") or a dotted abbreviation ("e.g.", "p.m.").
        if word.chars().count() == 1 && word.chars().all(char::is_alphabetic) || word.contains('.')
        {
            return false;
        }
        if ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(word)) {
            return false;
        }
        // A list number alone on its line ("1. Open the app").
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let alone = before[line_start..word_start].trim().is_empty();
        !(alone && word.len() <= 2 && word.chars().all(|c| c.is_ascii_digit()))
    }

    /// A cut for a sentence longer than `max_chars`: after its last clause break, or, past
    /// twice the limit, after its last space.
    fn long_sentence_cut(&self) -> Option<usize> {
        let buf = self.buf.as_str();
        let clause = buf
            .char_indices()
            .zip(buf.chars().skip(1))
            .filter(|&((_, c), next)| matches!(c, ',' | ':' | '—' | '–') && next.is_whitespace())
            .map(|((i, c), _)| i + c.len_utf8())
            .last();
        if clause.is_some() {
            return clause;
        }
        if buf.chars().count() > 2 * self.max_chars {
            return buf
                .rfind(char::is_whitespace)
                .filter(|&i| i > 0)
                .map(|i| i + 1);
        }
        None
    }
}

/// Text as it should be spoken: markdown emphasis, headings and bullets removed, whitespace
/// collapsed. Models often answer in markdown even when told not to.
pub fn speakable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.trim_start_matches('#');
        let line = line
            .strip_prefix("- ")
            .or_else(|| line.strip_prefix("* "))
            .or_else(|| line.strip_prefix("• "))
            .unwrap_or(line);
        for word in line.split_whitespace() {
            let word: String = word.chars().filter(|&c| c != '*' && c != '`').collect();
            if word.is_empty() || word.chars().all(|c| c == '_') {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `tokens` one by one; returns the sentences with the token index that completed
    /// each, then the remainder from `finish`.
    fn split(tokens: &[&str]) -> (Vec<(usize, String)>, Option<String>) {
        let mut s = SentenceSplitter::new(120);
        let mut out = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            out.extend(s.push(t).into_iter().map(|x| (i, x)));
        }
        (out, s.finish())
    }

    fn whole(text: &str) -> Vec<String> {
        let mut s = SentenceSplitter::new(120);
        let mut out = s.push(text);
        out.extend(s.finish());
        out
    }

    #[test]
    fn sentence_is_emitted_as_soon_as_the_next_token_shows_it_ended() {
        let (out, rest) = split(&["Hello", " there", ".", " How", " can I help", "?"]);
        assert_eq!(out, vec![(3, "Hello there.".to_string())]);
        assert_eq!(rest.as_deref(), Some("How can I help?"));
    }

    #[test]
    fn all_terminators_and_newlines_end_sentences() {
        assert_eq!(
            whole("Yes! Really? Fine; next.\nNew line\n\nLast"),
            vec!["Yes!", "Really?", "Fine;", "next.", "New line", "Last"]
        );
    }

    #[test]
    fn abbreviations_initials_and_dotted_words_do_not_end_sentences() {
        assert_eq!(
            whole(
                "Dr. Smith and Mrs. Jones see you at 5 p.m. today. J. R. Tolkien wrote it, e.g. here. Done."
            ),
            vec![
                "Dr. Smith and Mrs. Jones see you at 5 p.m. today.",
                "J. R. Tolkien wrote it, e.g. here.",
                "Done."
            ]
        );
    }

    #[test]
    fn numbers_keep_their_decimal_point_even_across_tokens() {
        let (out, rest) = split(&["It costs 3", ".", "5", " dollars. Version 2.", "0 is out"]);
        assert_eq!(out, vec![(3, "It costs 3.5 dollars.".to_string())]);
        assert_eq!(rest.as_deref(), Some("Version 2.0 is out"));
        // A number at the end of a sentence still ends it.
        assert_eq!(
            whole("I counted 12. Then I stopped."),
            vec!["I counted 12.", "Then I stopped."]
        );
    }

    #[test]
    fn list_numbers_stay_with_their_item() {
        assert_eq!(
            whole("Steps:\n1. Open the app.\n2. Tap call."),
            vec!["Steps:", "1. Open the app.", "2. Tap call."]
        );
    }

    #[test]
    fn closers_and_runs_stay_with_the_sentence() {
        assert_eq!(
            whole("He said \"no.\" Wait... what?! (Really.) Ok"),
            vec!["He said \"no.\"", "Wait...", "what?!", "(Really.)", "Ok"]
        );
    }

    #[test]
    fn long_sentences_are_cut_at_a_clause_break_then_at_a_space() {
        let mut s = SentenceSplitter::new(30);
        let out = s.push("This sentence is long enough, and it keeps going with more words");
        assert_eq!(out, vec!["This sentence is long enough,"]);
        assert_eq!(s.pending(), " and it keeps going with more words");
        let mut s = SentenceSplitter::new(20);
        let out = s.push("aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii");
        assert_eq!(out, vec!["aaaa bbbb cccc dddd eeee ffff gggg hhhh"]);
        assert_eq!(s.finish().as_deref(), Some("iiii"));
        // Commas inside numbers are not clause breaks.
        let mut s = SentenceSplitter::new(20);
        assert!(s.push("The total is 1,000,000 dollars").is_empty());
    }

    #[test]
    fn markdown_is_not_spoken() {
        assert_eq!(
            whole("## Hours\n- **Mon**: 9 to 5\n* `Sat`: closed"),
            vec!["Hours", "Mon: 9 to 5", "Sat: closed"]
        );
        assert_eq!(speakable("  a   b\n c "), "a b c");
    }

    #[test]
    fn multibyte_text_and_cjk_stops() {
        assert_eq!(
            whole("Ça va… très bien. 你好。再见"),
            vec!["Ça va…", "très bien.", "你好。", "再见"]
        );
    }

    #[test]
    fn empty_and_whitespace_input_emit_nothing() {
        assert!(whole("").is_empty());
        assert!(whole("  \n\n ").is_empty());
    }
}
