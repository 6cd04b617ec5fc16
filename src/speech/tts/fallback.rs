//! A TTS provider that falls back to a second one: when the primary cannot open, or fails
//! before it produced any audio, the fallback speaks the same text. Once audio has been
//! played the caller has heard the primary voice, so later errors are passed on instead.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{TtsContext, TtsEvent, TtsInput, TtsProvider, TtsStream};
use crate::speech::SpeechError;

const INPUT_CAPACITY: usize = 32;
const EVENT_CAPACITY: usize = 64;

pub struct FallbackTts {
    primary: Arc<dyn TtsProvider>,
    fallback: Arc<dyn TtsProvider>,
}

impl FallbackTts {
    pub fn new(primary: Arc<dyn TtsProvider>, fallback: Arc<dyn TtsProvider>) -> Self {
        Self { primary, fallback }
    }
}

#[async_trait]
impl TtsProvider for FallbackTts {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    async fn open(&self, ctx: TtsContext) -> Result<TtsStream, SpeechError> {
        let inner = match self.primary.open(ctx.clone()).await {
            Ok(s) => s,
            Err(e) => {
                warn!(call_id = %ctx.call_id, error = %e, fallback = self.fallback.name(), "primary tts did not open; using the fallback");
                return self.fallback.open(ctx).await;
            }
        };
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let relay = Relay {
            ctx,
            fallback: self.fallback.clone(),
            inner,
            history: Some(Vec::new()),
            events: events_tx,
        };
        tokio::spawn(relay.run(input_rx));
        Ok(TtsStream { input: input_tx, events: events_rx })
    }

    /// Usable when either provider is.
    async fn check(&self) -> Result<(), SpeechError> {
        match self.primary.check().await {
            Ok(()) => Ok(()),
            Err(e) => match self.fallback.check().await {
                Ok(()) => {
                    warn!(error = %e, fallback = self.fallback.name(), "primary tts unusable; the fallback will speak");
                    Ok(())
                }
                Err(_) => Err(e),
            },
        }
    }
}

struct Relay {
    ctx: TtsContext,
    fallback: Arc<dyn TtsProvider>,
    inner: TtsStream,
    /// Every input so far, kept until the first audio; `None` once audio flowed or after the
    /// switch (no second fallback).
    history: Option<Vec<TtsInput>>,
    events: mpsc::Sender<TtsEvent>,
}

impl Relay {
    async fn run(mut self, mut input: mpsc::Receiver<TtsInput>) {
        let mut input_done = false;
        loop {
            tokio::select! {
                inp = input.recv(), if !input_done => {
                    // A dropped sender means the call went away: same as a cancel.
                    let inp = inp.unwrap_or(TtsInput::Cancel);
                    if let Some(h) = self.history.as_mut() {
                        h.push(inp.clone());
                    }
                    let cancel = inp == TtsInput::Cancel;
                    input_done = cancel || inp == TtsInput::Finish;
                    // A closed inner input shows up as a closed event channel below.
                    let _ = self.inner.input.send(inp).await;
                    if cancel {
                        return;
                    }
                }
                ev = self.inner.events.recv() => match ev {
                    Some(ev @ (TtsEvent::Pcm { .. } | TtsEvent::Mulaw8k { .. })) => {
                        self.history = None;
                        if self.events.send(ev).await.is_err() {
                            let _ = self.inner.input.send(TtsInput::Cancel).await;
                            return;
                        }
                    }
                    Some(TtsEvent::Error(e)) if self.history.is_some() => {
                        if !self.switch(e).await {
                            return;
                        }
                    }
                    None if self.history.is_some() => {
                        if !self.switch(SpeechError::Closed { provider: "primary tts" }).await {
                            return;
                        }
                    }
                    Some(ev @ (TtsEvent::Done | TtsEvent::Error(_))) => {
                        let _ = self.events.send(ev).await;
                        return;
                    }
                    None => {
                        let _ = self.events.send(TtsEvent::Error(SpeechError::Closed { provider: "fallback tts" })).await;
                        return;
                    }
                },
            }
        }
    }

    /// Opens the fallback and gives it everything said so far. False when that failed too.
    async fn switch(&mut self, why: SpeechError) -> bool {
        let history = self.history.take().unwrap_or_default();
        warn!(call_id = %self.ctx.call_id, error = %why, fallback = self.fallback.name(), "primary tts failed before any audio; the fallback speaks the same text");
        match self.fallback.open(self.ctx.clone()).await {
            Ok(stream) => {
                for inp in history {
                    if stream.input.send(inp).await.is_err() {
                        break;
                    }
                }
                self.inner = stream;
                debug!(call_id = %self.ctx.call_id, "fallback tts took over");
                true
            }
            Err(e) => {
                warn!(call_id = %self.ctx.call_id, error = %e, "fallback tts did not open either");
                let _ = self.events.send(TtsEvent::Error(e)).await;
                false
            }
        }
    }
}
