//! `null` STT: recognizes nothing and costs nothing. Each finished turn (`Finalize`) is
//! reported as the placeholder transcript [`NULL_TRANSCRIPT`], so a flow still takes its
//! no-match path and answers: load tests use it to measure the media core and the turn loop
//! without a speech engine's cost.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{SttAudioFormat, SttContext, SttEvent, SttInput, SttProvider, SttStream};
use crate::speech::SpeechError;

pub const NULL_TRANSCRIPT: &str = "[speech]";

#[derive(Debug, Default, Clone)]
pub struct NullStt;

#[async_trait]
impl SttProvider for NullStt {
    fn name(&self) -> &'static str {
        "null"
    }

    async fn open(&self, ctx: SttContext) -> Result<SttStream, SpeechError> {
        let (input_tx, mut input_rx) = mpsc::channel::<SttInput>(64);
        let (event_tx, events) = mpsc::channel(16);
        let format = ctx.native_format.unwrap_or(SttAudioFormat::Linear16k);
        tokio::spawn(async move {
            let (mut turn_start, mut position) = (None::<f64>, 0.0f64);
            while let Some(input) = input_rx.recv().await {
                match input {
                    SttInput::Mulaw8k { at_samples, bytes } => {
                        turn_start.get_or_insert(at_samples as f64 / 8000.0);
                        position = (at_samples + bytes.len() as u64) as f64 / 8000.0;
                    }
                    SttInput::Linear16k { at_samples, samples } => {
                        turn_start.get_or_insert(at_samples as f64 / 16000.0);
                        position = (at_samples + samples.len() as u64) as f64 / 16000.0;
                    }
                    SttInput::Finalize => {
                        let start = turn_start.take().unwrap_or(position);
                        let ev = SttEvent::Final { text: NULL_TRANSCRIPT.into(), start, end: position, confidence: 1.0 };
                        if event_tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    SttInput::Close => break,
                }
            }
            let _ = event_tx.send(SttEvent::Closed).await;
        });
        Ok(SttStream { input: input_tx, events, format })
    }

    async fn check(&self) -> Result<(), SpeechError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_each_turn_with_its_times() {
        let stream = NullStt
            .open(SttContext { native_format: Some(SttAudioFormat::Mulaw8k), ..Default::default() })
            .await
            .unwrap();
        let SttStream { input, mut events, format } = stream;
        assert_eq!(format, SttAudioFormat::Mulaw8k);
        input.send(SttInput::Mulaw8k { at_samples: 8000, bytes: vec![0xff; 160] }).await.unwrap();
        input.send(SttInput::Mulaw8k { at_samples: 8160, bytes: vec![0xff; 160] }).await.unwrap();
        input.send(SttInput::Finalize).await.unwrap();
        assert_eq!(
            events.recv().await.unwrap(),
            SttEvent::Final { text: NULL_TRANSCRIPT.into(), start: 1.0, end: 1.04, confidence: 1.0 }
        );
        input.send(SttInput::Close).await.unwrap();
        assert_eq!(events.recv().await.unwrap(), SttEvent::Closed);
    }
}
