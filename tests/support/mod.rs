//! Test support shared by the integration tests (`mod support;` at the top of a test file).
//!
//! - [`twilio_caller`]: the Twilio side of a Media Stream (what Twilio's media servers send
//!   and how they react), to drive the server's stream endpoint like a real phone call.
//! - [`fake_twilio_rest`]: a local fake of Twilio's call REST API (update / create), recording
//!   what the server asked for.
//! - [`webrtc_client`]: a browser stand-in (a `webrtc`-crate peer) for WebRTC tests.
//! - [`speech_ulaw`]: real speech as 8 kHz μ-law, made with `espeak-ng` and `sox`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod fake_twilio_rest;
pub mod twilio_caller;
pub mod webrtc_client;

use std::process::Command;

use anyhow::{Context, bail};

/// Speaks `text` with `espeak-ng`, resamples it to 8 kHz mono with `sox`, and encodes it as
/// μ-law with the media crate's G.711 (the codec the server itself uses). Fails loudly when
/// the tools are missing rather than letting a test pass on silence.
pub fn speech_ulaw(text: &str) -> anyhow::Result<Vec<u8>> {
    let pcm = speech_pcm_8k(text)?;
    Ok(pcm
        .iter()
        .map(|&s| media::codec::g711::ulaw_encode(s))
        .collect())
}

/// `text` spoken by `espeak-ng`, as 8 kHz mono signed 16-bit samples.
pub fn speech_pcm_8k(text: &str) -> anyhow::Result<Vec<i16>> {
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("speech.wav");
    let raw = dir.path().join("speech_8k.raw");
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .context("running espeak-ng (apt install espeak-ng)")?;
    if !status.success() {
        bail!("espeak-ng failed: {status}");
    }
    let status = Command::new("sox")
        .arg(&wav)
        .args([
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
        ])
        .arg(&raw)
        .status()
        .context("running sox (apt install sox)")?;
    if !status.success() {
        bail!("sox failed: {status}");
    }
    let bytes = std::fs::read(&raw)?;
    let samples: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    if samples.len() < 800 {
        bail!(
            "espeak-ng produced only {} samples for {text:?}",
            samples.len()
        );
    }
    Ok(samples)
}
