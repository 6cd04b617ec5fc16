//! espeak-ng, in-process, on one dedicated worker thread.
//!
//! The engine is process-global C state and not thread-safe, so exactly one OS thread ever
//! calls into it. Everyone else talks to that thread through a bounded job channel
//! ([`Espeak::synthesize`], [`Espeak::check_voice`]); a call actor never blocks on it. In
//! `AUDIO_OUTPUT_SYNCHRONOUS` mode `espeak_Synth` runs the synthesis on the calling (worker)
//! thread and hands us each buffer through the synth callback as soon as it is produced, so audio
//! streams out chunk by chunk; the sink decides after every chunk whether to go on, which is how
//! a barge-in stops synthesis within one chunk.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_short, c_uint, c_void};
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

// ---- raw bindings (checked against /usr/include/espeak-ng/speak_lib.h, espeak-ng 1.51) ----

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeak_Initialize` option bit 15: return an error instead of calling `exit()` when the
/// voice data is missing. Without it a broken install would kill the whole server.
const INIT_DONT_EXIT: c_int = 0x8000;
const ESPEAK_RATE: c_int = 1;
const POS_CHARACTER: c_int = 1;
const ESPEAK_CHARS_UTF8: c_uint = 1;
const EE_OK: c_int = 0;
/// Length of each audio buffer handed to the callback. Shorter buffers mean an earlier first
/// chunk and a quicker stop on cancel; 20 ms matches the pipeline's frame size.
const BUFFER_MS: c_int = 20;

type SynthCallback = unsafe extern "C" fn(wav: *mut c_short, n: c_int, events: *mut c_void) -> c_int;

#[repr(C)]
struct RawVoice {
    name: *const c_char,
    /// Pairs of (priority byte, NUL-terminated language), ended by an extra NUL.
    languages: *const c_char,
    identifier: *const c_char,
    gender: u8,
    age: u8,
    variant: u8,
    xx1: u8,
    score: c_int,
    spare: *mut c_void,
}

#[link(name = "espeak-ng")]
unsafe extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetSynthCallback(cb: Option<SynthCallback>);
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
    fn espeak_ListVoices(spec: *mut RawVoice) -> *mut *const RawVoice;
}

// ---- safe API ----

/// Slowest and fastest rates espeak-ng accepts (`espeakRATE_MINIMUM` / `_MAXIMUM`), in words
/// per minute.
pub const RATE_MIN_WPM: u32 = 80;
pub const RATE_MAX_WPM: u32 = 450;
/// `espeakRATE_NORMAL`.
pub const RATE_NORMAL_WPM: u32 = 175;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum EspeakError {
    #[error("espeak-ng failed to initialise (is espeak-ng-data installed?)")]
    Init,
    #[error("unknown espeak-ng voice {0:?}")]
    UnknownVoice(String),
    #[error("text contains a NUL byte")]
    NulInText,
    #[error("espeak_Synth failed with code {0}")]
    Synth(i32),
    #[error("the espeak-ng worker thread is gone")]
    WorkerGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Unspecified,
    Male,
    Female,
}

/// One installed voice, for a voice catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Voice {
    /// Display name, e.g. `English_(America)`.
    pub name: String,
    /// What `espeak_SetVoiceByName` accepts besides the name, e.g. `gmw/en-US`.
    pub identifier: String,
    /// Language tags in preference order, e.g. `["en-us", "en"]`.
    pub languages: Vec<String>,
    pub gender: Gender,
}

/// How a synthesis job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthOutcome {
    /// All text was synthesized.
    Completed,
    /// The sink asked to stop (cancelled, or its receiver went away).
    Stopped,
}

/// Receives each chunk of 16-bit mono PCM at [`Espeak::sample_rate`] as it is produced.
/// Runs on the engine thread: it must not block for long (every other call's speech waits).
pub type Sink = Box<dyn FnMut(&[i16]) -> ControlFlow<()> + Send>;

enum Job {
    Synth {
        text: String,
        voice: String,
        rate_wpm: u32,
        sink: Sink,
        done: oneshot::Sender<Result<SynthOutcome, EspeakError>>,
    },
    CheckVoice {
        voice: String,
        done: oneshot::Sender<Result<(), EspeakError>>,
    },
}

/// Handle to the process-wide engine thread.
#[derive(Debug)]
pub struct Espeak {
    jobs: mpsc::Sender<Job>,
    sample_rate: u32,
    voices: Vec<Voice>,
}

/// Jobs waiting for the engine thread. Requests beyond this wait in `send().await`
/// (back-pressure on the per-stream task, never on a call actor).
const JOB_QUEUE: usize = 64;

static ENGINE: OnceLock<Result<Espeak, EspeakError>> = OnceLock::new();

impl Espeak {
    /// The engine, started on first use. Starting blocks for the engine's initialisation (tens
    /// of milliseconds), so call it once at startup, not from the audio loop.
    pub fn global() -> Result<&'static Espeak, EspeakError> {
        ENGINE.get_or_init(start_worker).as_ref().map_err(Clone::clone)
    }

    /// Output rate reported by `espeak_Initialize` (22,050 Hz for the stock voices).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Installed voices, read once at startup.
    pub fn voices(&self) -> &[Voice] {
        &self.voices
    }

    /// Selects `voice` on the engine to find out whether it exists. espeak-ng also accepts
    /// language tags (`en-us`) and variants (`en-us+f3`) that are not in the voice list, so
    /// asking the engine is the only reliable check.
    pub async fn check_voice(&self, voice: &str) -> Result<(), EspeakError> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job::CheckVoice { voice: voice.to_owned(), done })
            .await
            .map_err(|_| EspeakError::WorkerGone)?;
        rx.await.map_err(|_| EspeakError::WorkerGone)?
    }

    /// Synthesizes `text` with `voice` at `rate_wpm` (clamped to espeak-ng's range), streaming
    /// chunks into `sink`. Resolves when the job has finished or was stopped by the sink.
    pub async fn synthesize(
        &self,
        text: String,
        voice: String,
        rate_wpm: u32,
        sink: Sink,
    ) -> Result<SynthOutcome, EspeakError> {
        if text.contains('\0') {
            return Err(EspeakError::NulInText);
        }
        let (done, rx) = oneshot::channel();
        let job = Job::Synth { text, voice, rate_wpm, sink, done };
        self.jobs.send(job).await.map_err(|_| EspeakError::WorkerGone)?;
        rx.await.map_err(|_| EspeakError::WorkerGone)?
    }
}

fn start_worker() -> Result<Espeak, EspeakError> {
    let (jobs, rx) = mpsc::channel(JOB_QUEUE);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("espeak-ng".into())
        .spawn(move || {
            let init = Engine::init();
            let engine = match init {
                Ok((engine, rate, voices)) => {
                    let _ = ready_tx.send(Ok((rate, voices)));
                    engine
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            engine.run(rx);
        })
        .map_err(|_| EspeakError::Init)?;
    let (sample_rate, voices) = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| EspeakError::Init)??;
    Ok(Espeak { jobs, sample_rate, voices })
}

thread_local! {
    /// The sink of the job being synthesized on this (the engine) thread. The C callback has
    /// no closure argument we could trust for every event, so it finds the sink here.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
    /// Whether the callback told espeak-ng to abort the current job. espeak-ng reports an
    /// aborted synthesis as success, so this is the only record of it.
    static ABORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe extern "C" fn synth_callback(wav: *mut c_short, n: c_int, _events: *mut c_void) -> c_int {
    if wav.is_null() || n <= 0 {
        return 0;
    }
    // SAFETY: espeak-ng passes a buffer of `n` samples that stays valid during the callback.
    let chunk = unsafe { std::slice::from_raw_parts(wav as *const i16, n as usize) };
    // A panic must not unwind into C; treat it as "stop".
    let flow = catch_unwind(AssertUnwindSafe(|| {
        SINK.with(|s| match s.borrow_mut().as_mut() {
            Some(sink) => sink(chunk),
            None => ControlFlow::Continue(()),
        })
    }));
    match flow {
        Ok(ControlFlow::Continue(())) => 0,
        _ => {
            ABORTED.with(|a| a.set(true));
            1
        }
    }
}

/// The engine itself; only ever exists on the worker thread (it is deliberately not `Send`).
struct Engine {
    current_voice: Option<String>,
    current_rate: Option<u32>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Engine {
    fn init() -> Result<(Engine, u32, Vec<Voice>), EspeakError> {
        // SAFETY: called once per process, on the thread that will own the engine.
        let rate = unsafe {
            espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, std::ptr::null(), INIT_DONT_EXIT)
        };
        if rate <= 0 {
            return Err(EspeakError::Init);
        }
        // SAFETY: `synth_callback` matches `t_espeak_callback` and lives for the process.
        unsafe { espeak_SetSynthCallback(Some(synth_callback)) };
        let voices = list_voices_raw();
        let engine = Engine { current_voice: None, current_rate: None, _not_send: std::marker::PhantomData };
        Ok((engine, rate as u32, voices))
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.blocking_recv() {
            match job {
                Job::CheckVoice { voice, done } => {
                    let _ = done.send(self.select_voice(&voice));
                }
                Job::Synth { text, voice, rate_wpm, sink, done } => {
                    let result = self.synth(&text, &voice, rate_wpm, sink);
                    let _ = done.send(result);
                }
            }
        }
    }

    fn select_voice(&mut self, voice: &str) -> Result<(), EspeakError> {
        if self.current_voice.as_deref() == Some(voice) {
            return Ok(());
        }
        let name = CString::new(voice).map_err(|_| EspeakError::UnknownVoice(voice.to_owned()))?;
        // SAFETY: `name` is a valid C string for the duration of the call.
        let code = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
        if code != EE_OK {
            self.current_voice = None;
            return Err(EspeakError::UnknownVoice(voice.to_owned()));
        }
        self.current_voice = Some(voice.to_owned());
        // A voice change resets the rate to the voice's default.
        self.current_rate = None;
        Ok(())
    }

    fn synth(&mut self, text: &str, voice: &str, rate_wpm: u32, sink: Sink) -> Result<SynthOutcome, EspeakError> {
        self.select_voice(voice)?;
        let rate = rate_wpm.clamp(RATE_MIN_WPM, RATE_MAX_WPM);
        if self.current_rate != Some(rate) {
            // SAFETY: plain integer parameters.
            unsafe { espeak_SetParameter(ESPEAK_RATE, rate as c_int, 0) };
            self.current_rate = Some(rate);
        }
        let text = CString::new(text).map_err(|_| EspeakError::NulInText)?;
        SINK.with(|s| *s.borrow_mut() = Some(sink));
        ABORTED.with(|a| a.set(false));
        // SAFETY: `text` is NUL-terminated UTF-8 and outlives this synchronous call; the
        // callback only touches the thread-local sink installed above.
        let code = unsafe {
            espeak_Synth(
                text.as_ptr() as *const c_void,
                text.as_bytes_with_nul().len(),
                0,
                POS_CHARACTER,
                0,
                ESPEAK_CHARS_UTF8,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        // Drop the sink here, on the engine thread, before reporting back.
        drop(SINK.with(|s| s.borrow_mut().take()));
        let was_stopped = ABORTED.with(|a| a.get());
        if code != EE_OK {
            return Err(EspeakError::Synth(code));
        }
        Ok(if was_stopped { SynthOutcome::Stopped } else { SynthOutcome::Completed })
    }
}

fn list_voices_raw() -> Vec<Voice> {
    let mut out = Vec::new();
    // SAFETY: with a NULL spec espeak-ng returns a static, NULL-terminated array of pointers
    // to voice records that stay valid until the next ListVoices call (we copy them at once).
    unsafe {
        let list = espeak_ListVoices(std::ptr::null_mut());
        if list.is_null() {
            return out;
        }
        let mut i = 0;
        loop {
            let v = *list.add(i);
            if v.is_null() {
                break;
            }
            let v = &*v;
            out.push(Voice {
                name: c_str(v.name),
                identifier: c_str(v.identifier),
                languages: parse_languages(v.languages),
                gender: match v.gender {
                    1 => Gender::Male,
                    2 => Gender::Female,
                    _ => Gender::Unspecified,
                },
            });
            i += 1;
        }
    }
    out
}

/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: per the function contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// # Safety
/// `p` is NULL or points at espeak-ng's language list: (priority byte, NUL-terminated string)
/// pairs ended by a zero priority byte.
unsafe fn parse_languages(mut p: *const c_char) -> Vec<String> {
    let mut langs = Vec::new();
    if p.is_null() {
        return langs;
    }
    // SAFETY: walking the list within its terminators, per the function contract.
    unsafe {
        while *p != 0 {
            p = p.add(1); // skip the priority byte
            let s = CStr::from_ptr(p);
            langs.push(s.to_string_lossy().into_owned());
            p = p.add(s.to_bytes().len() + 1);
        }
    }
    langs
}
