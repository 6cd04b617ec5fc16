//! `tone` TTS: no speech engine, no cost. Each text becomes a speech-like signal (a voiced
//! buzz whose loudness rises and falls at a syllable rate) lasting about as long as a person
//! would take to say it, produced at once as μ-law 8 kHz. Load tests use it to measure the
//! media core and the playout path without a synthesizer's cost; voice-activity detectors
//! see it as speech, unlike a pure tone.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{TtsContext, TtsEvent, TtsInput, TtsProvider, TtsStream};
use crate::speech::SpeechError;

/// About 14 characters a second: ordinary speaking rate.
const MS_PER_CHAR: usize = 70;
const CHUNK_SAMPLES: usize = 1600;

#[derive(Debug, Default, Clone)]
pub struct ToneTts;

/// The signal for `text`, as 16-bit PCM at 8 kHz.
pub fn tone_for(text: &str) -> Vec<i16> {
    let samples = text.chars().count().max(1) * MS_PER_CHAR * 8;
    (0..samples)
        .map(|n| {
            let t = n as f32 / 8000.0;
            // 140 Hz fundamental with two harmonics, amplitude-modulated at 4 Hz (syllables).
            let voice = (2.0 * std::f32::consts::PI * 140.0 * t).sin()
                + 0.5 * (2.0 * std::f32::consts::PI * 280.0 * t).sin()
                + 0.25 * (2.0 * std::f32::consts::PI * 420.0 * t).sin();
            let envelope = 0.55 + 0.45 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            (voice * envelope * 6000.0) as i16
        })
        .collect()
}

#[async_trait]
impl TtsProvider for ToneTts {
    fn name(&self) -> &'static str {
        "tone"
    }

    async fn open(&self, _ctx: TtsContext) -> Result<TtsStream, SpeechError> {
        let (input, mut input_rx) = mpsc::channel::<TtsInput>(16);
        let (event_tx, events) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut text = String::new();
            while let Some(msg) = input_rx.recv().await {
                match msg {
                    TtsInput::Text(t) => text.push_str(&t),
                    TtsInput::Flush | TtsInput::Finish => {
                        let pcm = tone_for(&text);
                        text.clear();
                        for chunk in pcm.chunks(CHUNK_SAMPLES) {
                            let bytes = chunk.iter().map(|s| media::codec::g711::ulaw_encode(*s)).collect();
                            if event_tx.send(TtsEvent::Mulaw8k { bytes }).await.is_err() {
                                return;
                            }
                        }
                        if matches!(msg, TtsInput::Finish) {
                            let _ = event_tx.send(TtsEvent::Done).await;
                            return;
                        }
                    }
                    TtsInput::Cancel => return,
                }
            }
        });
        Ok(TtsStream { input, events })
    }

    async fn check(&self) -> Result<(), SpeechError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn length_follows_the_text() {
        let stream = ToneTts.open(TtsContext::default()).await.unwrap();
        let TtsStream { input, mut events } = stream;
        input.send(TtsInput::Text("hello there".into())).await.unwrap();
        input.send(TtsInput::Finish).await.unwrap();
        let mut total = 0;
        loop {
            match events.recv().await.unwrap() {
                TtsEvent::Mulaw8k { bytes } => total += bytes.len(),
                TtsEvent::Done => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(total, 11 * MS_PER_CHAR * 8);
    }
}
