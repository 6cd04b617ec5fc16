//! One call's conversation with the model: history, the answer in progress, barge-in.
//!
//! Each answer runs in its own task, which streams the completion, cuts it into sentences,
//! runs tools and reports through a bounded channel. What the task has emitted is written to a
//! small log shared with the session (under a lock never held across an await), so the session
//! knows what was said without the actor having to hand anything back. The turn stays open
//! until the next `respond`, `interrupted` or `cancel`: barge-in usually comes after the model
//! has finished streaming, while the caller is still listening to the answer.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug, trace, warn};

use super::LlmError;
use super::client::{LlmClient, error_chain};
use super::sentences::SentenceSplitter;
use super::wire::{
    ChatMessage, FinishReason, SseDecoder, SseItem, StreamEvent, ToolCall, ToolCallAssembler,
};
use crate::dialog::Action;

/// Outputs of one answer. The actor reads them as they come; a sentence is ready for TTS.
const OUTPUT_CAPACITY: usize = 32;

/// What an answer produces, in order. `Done` or `Error` is always last.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmOutput {
    /// A complete sentence to speak.
    Sentence(String),
    /// A tool call the call actor carries out (transfer, hang-up); the answer ends after it.
    Action(Action),
    /// The answer is complete.
    Done,
    /// The answer failed; the sentences before it were emitted and stay in the history.
    Error(String),
}

/// One call's conversation. Owned by the call actor; no method blocks or awaits.
/// `respond` spawns a task, so it must be called inside a tokio runtime.
pub struct LlmSession {
    client: LlmClient,
    /// Everything up to and including the caller's last message.
    history: Vec<ChatMessage>,
    live: Option<LiveTurn>,
    /// `history` plus the live turn, rebuilt by [`LlmSession::history`].
    view: Vec<ChatMessage>,
}

struct LiveTurn {
    log: Arc<Mutex<TurnLog>>,
    task: AbortHandle,
}

/// What an answer has said and done so far.
#[derive(Debug, Default)]
struct TurnLog {
    /// Finished tool rounds: the assistant message with its calls, then one result per call.
    rounds: Vec<ChatMessage>,
    /// Sentences emitted in the current round.
    spoken: Vec<String>,
}

impl TurnLog {
    fn take_spoken(&mut self) -> Option<String> {
        let text = std::mem::take(&mut self.spoken).join(" ");
        (!text.is_empty()).then_some(text)
    }

    fn messages(&self) -> Vec<ChatMessage> {
        let mut out = self.rounds.clone();
        if !self.spoken.is_empty() {
            out.push(ChatMessage::assistant_text(self.spoken.join(" ")));
        }
        out
    }
}

impl LlmSession {
    pub fn new(client: LlmClient, system_prompt: String) -> Self {
        let mut history = Vec::new();
        if !system_prompt.trim().is_empty() {
            history.push(ChatMessage::System {
                content: system_prompt,
            });
        }
        Self {
            client,
            history,
            live: None,
            view: Vec::new(),
        }
    }

    /// Starts answering `user_text`; replaces (cancels) any answer in progress, keeping what
    /// it emitted in the history (call [`LlmSession::interrupted`] first if the caller heard
    /// less). Outputs of the replaced answer still queued in its receiver are stale.
    pub fn respond(&mut self, user_text: &str) -> mpsc::Receiver<LlmOutput> {
        self.close_turn(None);
        self.history.push(ChatMessage::User {
            content: user_text.trim().to_owned(),
        });
        let (tx, rx) = mpsc::channel(OUTPUT_CAPACITY);
        let log = Arc::new(Mutex::new(TurnLog::default()));
        let answer = Answer {
            client: self.client.clone(),
            log: Arc::clone(&log),
            tx,
        };
        let task = tokio::spawn(answer.run(self.history.clone()).in_current_span());
        self.live = Some(LiveTurn {
            log,
            task: task.abort_handle(),
        });
        rx
    }

    /// The bot was interrupted; `heard` is the part of the answer the caller heard. The
    /// in-progress stream is cancelled and the assistant turn in history becomes `heard`.
    /// Tool calls already made stay (their results are facts), without unheard words.
    /// Drop the answer's receiver: anything still queued in it is stale.
    pub fn interrupted(&mut self, heard: &str) {
        self.close_turn(Some(heard));
    }

    /// Adds a note for the model (not from the caller) that the next answer takes into account.
    pub fn note(&mut self, text: &str) {
        self.history.push(ChatMessage::System { content: text.trim().to_owned() });
    }

    /// Stops the answer in progress; what it emitted stays in the history.
    pub fn cancel(&mut self) {
        self.close_turn(None);
    }

    /// The conversation so far, including what the current answer has emitted.
    ///
    /// Takes `&mut self` because the answer's text lives in its task's log until the turn
    /// closes: reading it means copying it out, and the copy is kept here.
    pub fn history(&mut self) -> &[ChatMessage] {
        self.view.clear();
        self.view.extend_from_slice(&self.history);
        if let Some(live) = &self.live {
            self.view.extend(
                live.log
                    .lock()
                    .expect("turn log lock is never held across a panic")
                    .messages(),
            );
        }
        &self.view
    }

    fn close_turn(&mut self, heard: Option<&str>) {
        let Some(live) = self.live.take() else { return };
        // Takes effect at the task's next await; nothing it does after that is recorded here,
        // because the log is read now.
        live.task.abort();
        let said = live
            .log
            .lock()
            .expect("turn log lock is never held across a panic")
            .messages();
        match heard {
            Some(heard) => {
                debug!(heard_chars = heard.len(), "answer interrupted");
                self.history.extend(keep_heard(said, heard));
            }
            None => self.history.extend(said),
        }
    }
}

impl Drop for LlmSession {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.task.abort();
        }
    }
}

/// Rewrites an answer's messages so their text is `heard`: messages whose words were all heard
/// stay, the one the caller was cut off in keeps the heard rest, later text goes. Assistant
/// messages that carry tool calls stay (without text if unheard), so every tool result still
/// follows its call as the API requires.
fn keep_heard(said: Vec<ChatMessage>, heard: &str) -> Vec<ChatMessage> {
    let heard: Vec<&str> = heard.split_whitespace().collect();
    let mut at = 0;
    let mut out = Vec::with_capacity(said.len());
    for msg in said {
        let ChatMessage::Assistant {
            content,
            tool_calls,
        } = msg
        else {
            out.push(msg);
            continue;
        };
        let content = content.and_then(|text| {
            let rest = &heard[at..];
            if rest.is_empty() {
                return None;
            }
            let words: Vec<&str> = text.split_whitespace().collect();
            if rest.len() >= words.len() && rest[..words.len()] == words[..] {
                at += words.len();
                Some(text)
            } else {
                at = heard.len();
                Some(rest.join(" "))
            }
        });
        if content.is_some() || !tool_calls.is_empty() {
            out.push(ChatMessage::Assistant {
                content,
                tool_calls,
            });
        }
    }
    out
}

/// The task behind one `respond`.
struct Answer {
    client: LlmClient,
    log: Arc<Mutex<TurnLog>>,
    tx: mpsc::Sender<LlmOutput>,
}

impl Answer {
    async fn run(self, mut messages: Vec<ChatMessage>) {
        let last = match self.answer(&mut messages).await {
            Ok(()) => LlmOutput::Done,
            Err(LlmError::Closed) => return,
            Err(e) => {
                warn!(error = %e, "llm answer failed");
                LlmOutput::Error(e.to_string())
            }
        };
        let _ = self.tx.send(last).await;
    }

    async fn answer(&self, messages: &mut Vec<ChatMessage>) -> Result<(), LlmError> {
        let inner = &self.client.inner;
        let max = inner.max_tool_rounds;
        for round in 0..=max {
            let last_round = round == max;
            let calls = self.stream_round(messages, last_round).await?;
            if calls.is_empty() {
                return Ok(());
            }
            let mut results = Vec::with_capacity(calls.len());
            let mut actions = Vec::new();
            for call in &calls {
                let run = self
                    .unless_closed(inner.tools.run(call, !last_round))
                    .await?;
                results.push(ChatMessage::Tool {
                    tool_call_id: call.id.clone(),
                    content: run.result,
                });
                actions.extend(run.action);
            }
            let round_messages = {
                let mut log = self
                    .log
                    .lock()
                    .expect("turn log lock is never held across a panic");
                let mut m = vec![ChatMessage::Assistant {
                    content: log.take_spoken(),
                    tool_calls: calls,
                }];
                m.extend(results);
                log.rounds.extend_from_slice(&m);
                m
            };
            messages.extend(round_messages);
            if !actions.is_empty() {
                for action in actions {
                    self.send(LlmOutput::Action(action)).await?;
                }
                return Ok(());
            }
        }
        Err(LlmError::ToolRounds(max))
    }

    /// Streams one completion: speaks its sentences as they complete, returns its tool calls.
    async fn stream_round(
        &self,
        messages: &[ChatMessage],
        last_round: bool,
    ) -> Result<Vec<ToolCall>, LlmError> {
        let inner = &self.client.inner;
        let first_deadline = Instant::now() + inner.first_token_timeout;
        let resp = self
            .unless_closed(timeout_at(
                first_deadline,
                inner.start(messages, last_round),
            ))
            .await?
            .map_err(|_| LlmError::Timeout("the first token"))??;
        let mut body = resp.bytes_stream();
        let mut sse = SseDecoder::default();
        let mut splitter = SentenceSplitter::new(inner.max_sentence_chars);
        let mut calls = ToolCallAssembler::default();
        let mut items = Vec::new();
        let mut finish = None;
        let mut done = false;
        let mut answered = false;
        let mut malformed = 0usize;
        let mut deadline = first_deadline;
        while !done {
            let what = if answered {
                "the next token"
            } else {
                "the first token"
            };
            let next = self
                .unless_closed(timeout_at(
                    deadline,
                    futures_util::StreamExt::next(&mut body),
                ))
                .await?
                .map_err(|_| LlmError::Timeout(what))?;
            let ended = match next {
                None => {
                    sse.finish(&mut items);
                    true
                }
                Some(Err(e)) => return Err(LlmError::Broken(error_chain(&e))),
                Some(Ok(bytes)) => {
                    trace!(bytes = bytes.len(), "llm body chunk");
                    sse.push(&bytes, &mut items);
                    false
                }
            };
            for item in items.drain(..) {
                let data = match item {
                    SseItem::Done => {
                        done = true;
                        break;
                    }
                    SseItem::Data(d) => d,
                };
                let chunk = match serde_json::from_str::<StreamEvent>(&data) {
                    Ok(StreamEvent::Chunk(c)) => c,
                    Ok(StreamEvent::Error { error }) => {
                        return Err(LlmError::Server(error.message));
                    }
                    Err(e) => {
                        malformed += 1;
                        let snippet: String = data.chars().take(80).collect();
                        warn!(error = %e, data = %snippet, "skipping an unreadable stream event");
                        continue;
                    }
                };
                let Some(choice) = chunk.choices.into_iter().next() else {
                    continue;
                };
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    answered = true;
                    for sentence in splitter.push(&text) {
                        self.say(sentence).await?;
                    }
                }
                for fragment in choice.delta.tool_calls {
                    answered = true;
                    calls.push(fragment);
                }
                if choice.finish_reason.is_some() {
                    finish = choice.finish_reason;
                }
            }
            if answered {
                deadline = Instant::now() + inner.idle_timeout;
            }
            if ended {
                break;
            }
        }
        if !done && finish.is_none() {
            // What was not a whole sentence yet is not spoken: it would end mid-thought.
            return Err(LlmError::Broken(
                "the stream ended before the answer was complete".to_owned(),
            ));
        }
        if !answered && malformed > 0 {
            return Err(LlmError::Protocol(format!(
                "{malformed} unreadable stream events and no answer"
            )));
        }
        if finish == Some(FinishReason::Length) {
            warn!("answer cut off by llm.max_tokens");
        }
        if let Some(rest) = splitter.finish() {
            self.say(rest).await?;
        }
        Ok(calls.finish())
    }

    async fn say(&self, sentence: String) -> Result<(), LlmError> {
        trace!(%sentence, "llm sentence");
        self.tx
            .send(LlmOutput::Sentence(sentence.clone()))
            .await
            .map_err(|_| LlmError::Closed)?;
        // Recorded right after the send completes, in the same poll: an abort cannot fall
        // between the two.
        self.log
            .lock()
            .expect("turn log lock is never held across a panic")
            .spoken
            .push(sentence);
        Ok(())
    }

    /// Runs `work` unless the receiver goes away first: then the work (an HTTP request, a
    /// body read) is dropped, which closes its connection.
    async fn unless_closed<T>(&self, work: impl Future<Output = T>) -> Result<T, LlmError> {
        tokio::select! {
            out = work => Ok(out),
            () = self.tx.closed() => {
                debug!("answer no longer wanted; stopping its request");
                Err(LlmError::Closed)
            }
        }
    }

    async fn send(&self, out: LlmOutput) -> Result<(), LlmError> {
        self.tx.send(out).await.map_err(|_| LlmError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::llm::wire::{FunctionCall, ToolKind};

    fn lookup_call() -> ChatMessage {
        ChatMessage::Assistant {
            content: Some("Let me check.".into()),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                kind: ToolKind::Function,
                function: FunctionCall {
                    name: "lookup".into(),
                    arguments: "{}".into(),
                },
            }],
        }
    }

    fn result() -> ChatMessage {
        ChatMessage::Tool {
            tool_call_id: "c1".into(),
            content: "{}".into(),
        }
    }

    #[test]
    fn heard_prefix_is_kept_and_the_rest_dropped() {
        let said = vec![ChatMessage::assistant_text(
            "Our hours are nine to five. We are closed on Sundays.",
        )];
        assert_eq!(
            keep_heard(said.clone(), "Our hours are nine"),
            vec![ChatMessage::assistant_text("Our hours are nine")]
        );
        assert_eq!(
            keep_heard(
                said.clone(),
                "Our hours are nine to five. We are closed on Sundays."
            ),
            said
        );
        assert!(keep_heard(said, "  ").is_empty());
    }

    #[test]
    fn tool_rounds_survive_an_interruption() {
        let said = vec![
            lookup_call(),
            result(),
            ChatMessage::assistant_text("It ships tomorrow."),
        ];
        // Heard the first round and part of the answer.
        assert_eq!(
            keep_heard(said.clone(), "Let me check. It ships"),
            vec![
                lookup_call(),
                result(),
                ChatMessage::assistant_text("It ships")
            ]
        );
        // Heard nothing: the calls stay, without words.
        let kept = keep_heard(said, "");
        assert_eq!(kept.len(), 2);
        assert!(
            matches!(&kept[0], ChatMessage::Assistant { content: None, tool_calls } if tool_calls.len() == 1)
        );
    }
}
