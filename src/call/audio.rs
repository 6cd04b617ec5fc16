//! The per-call media chains, built from the `media` crate once per call and reused for every
//! frame (no allocation per frame once buffers have grown to their working size).
//!
//! Inbound: μ-law 8 kHz -> PCM -> 16 kHz -> voice activity detection.
//! Outbound: TTS PCM at its own rate -> the leg's rate -> 20 ms frames with marks -> μ-law
//! (Twilio) or PCM (WebRTC, encoded to Opus by the transport).

use media::codec::g711::{ulaw_decode, ulaw_encode};
use media::pacer::{Pacer, PacerConfig};
use media::vad::{EarshotVad, Vad, VadConfig, VoiceDetector, WebRtcVad, WebRtcVadMode};
use media::{SampleRate, StreamResampler, Timestamp};

use super::leg::{LegFormat, LegOut};
use crate::config::{VadEngineKind, VadSettings};

/// 20 ms at 16 kHz: the VAD's frame.
const VAD_FRAME: usize = 320;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("resampler: {0}")]
    Resample(#[from] media::ResampleError),
    #[error("voice activity detector: {0}")]
    Vad(#[from] media::vad::VadError),
    #[error("playout: {0}")]
    Pacer(#[from] media::pacer::PacerError),
}

/// Voice activity, in milliseconds on the caller's audio clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    Started { at_ms: u64 },
    Ended { at_ms: u64, duration_ms: u64 },
}

pub struct InboundAudio {
    pcm8: Vec<i16>,
    upsampler: StreamResampler,
    /// 16 kHz samples not yet a whole VAD frame.
    pending: Vec<i16>,
    detector: VoiceDetector<Box<dyn Vad>>,
    /// Samples received so far at 8 kHz (the caller's clock).
    received_8k: u64,
    /// Samples fed to the VAD so far at 16 kHz.
    analysed_16k: u64,
}

impl InboundAudio {
    pub fn new(settings: &VadSettings) -> Result<Self, AudioError> {
        let engine: Box<dyn Vad> = match settings.engine {
            VadEngineKind::Webrtc => Box::new(WebRtcVad::new(SampleRate::HZ_16000, WebRtcVadMode::Aggressive)?),
            VadEngineKind::Earshot => Box::new(EarshotVad::new()),
        };
        let config = VadConfig {
            start: settings.start,
            stop: settings.stop,
            min_volume_dbfs: settings.min_volume_dbfs,
            ..VadConfig::default()
        };
        Ok(Self {
            pcm8: Vec::with_capacity(320),
            upsampler: StreamResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)?,
            pending: Vec::with_capacity(2 * VAD_FRAME),
            detector: VoiceDetector::new(engine, config),
            received_8k: 0,
            analysed_16k: 0,
        })
    }

    /// Samples received so far at 8 kHz: the sample-clock position of the next byte.
    pub fn position_samples_8k(&self) -> u64 {
        self.received_8k
    }

    pub fn position_ms(&self) -> u64 {
        self.received_8k / 8
    }

    pub fn is_speaking(&self) -> bool {
        self.detector.is_speaking()
    }

    /// Analyses caller audio that is already 16 kHz PCM (a WebRTC leg). The caller's clock
    /// is kept in 8 kHz samples for every transport.
    pub fn push_pcm16(&mut self, pcm: &[i16], events: &mut Vec<VadEvent>) -> Result<(), AudioError> {
        self.received_8k += pcm.len() as u64 / 2;
        self.pending.extend_from_slice(pcm);
        self.analyse(events)
    }

    /// Decodes and analyses one chunk of caller audio. The 16 kHz PCM it produced is appended
    /// to `pcm16` (for recognition); VAD events are appended to `events`.
    pub fn push_mulaw(&mut self, ulaw: &[u8], pcm16: &mut Vec<i16>, events: &mut Vec<VadEvent>) -> Result<(), AudioError> {
        self.received_8k += ulaw.len() as u64;
        self.pcm8.clear();
        self.pcm8.extend(ulaw.iter().map(|&b| ulaw_decode(b)));
        let start = pcm16.len();
        self.upsampler.process(&self.pcm8, pcm16)?;
        self.pending.extend_from_slice(&pcm16[start..]);
        self.analyse(events)
    }

    fn analyse(&mut self, events: &mut Vec<VadEvent>) -> Result<(), AudioError> {
        let mut offset = 0;
        while self.pending.len() - offset >= VAD_FRAME {
            let frame = &self.pending[offset..offset + VAD_FRAME];
            let at = Timestamp::new(self.analysed_16k, SampleRate::HZ_16000);
            if let Some(ev) = self.detector.push(frame, at)? {
                events.push(match ev {
                    media::vad::VadEvent::SpeechStarted { at } => VadEvent::Started { at_ms: ms(at) },
                    media::vad::VadEvent::SpeechEnded { at, duration } => {
                        VadEvent::Ended { at_ms: ms(at), duration_ms: duration.as_millis() as u64 }
                    }
                });
            }
            self.analysed_16k += VAD_FRAME as u64;
            offset += VAD_FRAME;
        }
        self.pending.drain(..offset);
        Ok(())
    }
}

fn ms(t: Timestamp) -> u64 {
    t.as_duration().as_millis() as u64
}

/// One outbound frame ready for the wire, in the leg's format.
pub struct OutFrame {
    pub audio: LegOut,
    /// Marks placed right after this frame's audio.
    pub marks_after: Vec<String>,
    pub silence: bool,
}

pub struct OutboundAudio {
    format: LegFormat,
    /// Resamples TTS audio to the leg's rate; rebuilt only if a provider changes rate.
    resampler: Option<StreamResampler>,
    scratch: Vec<i16>,
    pcm8: Vec<i16>,
    pacer: Pacer,
}

impl OutboundAudio {
    pub fn new(format: LegFormat) -> Result<Self, AudioError> {
        Ok(Self {
            format,
            resampler: None,
            scratch: Vec::new(),
            pcm8: Vec::new(),
            pacer: Pacer::new(PacerConfig::new(format.rate())),
        })
    }

    /// Audio queued and not yet sent.
    pub fn queued_ms(&self) -> u64 {
        self.pacer.queued().as_millis() as u64
    }

    /// The leg's sample rate: every sample count this type reports is at this rate.
    pub fn rate(&self) -> SampleRate {
        self.format.rate()
    }

    /// Queues TTS PCM at `rate`; returns the samples queued (at the leg's rate).
    pub fn push_pcm(&mut self, samples: &[i16], rate: SampleRate) -> Result<u64, AudioError> {
        if self.resampler.as_ref().is_none_or(|r| r.from_rate() != rate) {
            self.resampler = Some(StreamResampler::new(rate, self.format.rate())?);
        }
        let resampler = self.resampler.as_mut().expect("set just above");
        self.scratch.clear();
        let n = resampler.process(samples, &mut self.scratch)?;
        self.pacer.push(&self.scratch)?;
        Ok(n as u64)
    }

    /// Queues μ-law 8 kHz (providers that speak telephone audio natively).
    pub fn push_mulaw(&mut self, bytes: &[u8]) -> Result<u64, AudioError> {
        self.pcm8.clear();
        self.pcm8.extend(bytes.iter().map(|&b| ulaw_decode(b)));
        if self.format == LegFormat::Mulaw8k {
            self.pacer.push(&self.pcm8)?;
            return Ok(bytes.len() as u64);
        }
        let pcm8 = std::mem::take(&mut self.pcm8);
        let queued = self.push_pcm(&pcm8, SampleRate::HZ_8000);
        self.pcm8 = pcm8;
        queued
    }

    /// End of an utterance: pushes out what the resampler still holds (its last partial block
    /// and its filter delay) so the utterance's tail is not lost; returns the samples queued.
    pub fn flush_tail(&mut self) -> u64 {
        let Some(resampler) = self.resampler.as_mut() else { return 0 };
        if resampler.pending_input() == 0 && resampler.delay_samples() == 0 {
            return 0;
        }
        let block_in = resampler.from_rate().samples_in_ms(20);
        let silence_needed = (block_in - resampler.pending_input() % block_in) % block_in
            + block_in * resampler.delay_samples().div_ceil(resampler.block_out().max(1));
        self.scratch.clear();
        let zeros = vec![0i16; silence_needed];
        let n = resampler.process(&zeros, &mut self.scratch).unwrap_or(0);
        // Let the next utterance start from a clean filter state.
        resampler.reset();
        match self.pacer.push(&self.scratch) {
            Ok(()) => n as u64,
            Err(_) => 0,
        }
    }

    pub fn mark(&mut self, name: String) {
        self.pacer.mark(name);
    }

    /// The next 20 ms frame due to play at `at`. On a μ-law leg only real audio is returned
    /// (`None` when nothing is queued); a continuous leg also gets silence. The caller drives
    /// the pacer's clock with the far end's playout time, which may run ahead of wall time by
    /// the playout lead.
    pub fn next_frame(&mut self, at: std::time::Instant) -> Option<OutFrame> {
        let continuous = self.format == LegFormat::Pcm16k;
        if !continuous && self.pacer.queued_samples() == 0 && self.pacer.pending_marks().next().is_none() {
            return None;
        }
        let frame = self.pacer.poll(at)?;
        let silence = frame.is_silence();
        if silence && frame.marks.is_empty() && !continuous {
            return None;
        }
        let audio = match self.format {
            LegFormat::Mulaw8k => LegOut::Mulaw8k(frame.samples.iter().map(|&s| ulaw_encode(s)).collect()),
            LegFormat::Pcm16k => LegOut::Pcm16k(frame.samples.to_vec()),
        };
        Some(OutFrame { audio, marks_after: frame.marks.to_vec(), silence })
    }

    /// Drops everything queued; returns the marks that will never be sent.
    pub fn clear(&mut self) -> Vec<String> {
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        self.pacer.clear().marks
    }
}
