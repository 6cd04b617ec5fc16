//! pocketsphinx 5prealpha + sphinxbase, as Debian 12 ships them (`libpocketsphinx-dev`).
//!
//! A [`Decoder`] owns one `ps_decoder_t` and its `cmd_ln_t` configuration. The library keeps no
//! shared mutable state between decoders except its logger, so a decoder may move between
//! threads (`Send`), but only one thread may drive it at a time (not `Sync`; every method takes
//! `&mut self`). Prototypes are checked against /usr/include/pocketsphinx/*.h and
//! /usr/include/x86_64-linux-gnu/sphinxbase/*.h.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Once;

use thiserror::Error;

#[repr(C)]
struct PsDecoderT {
    _opaque: [u8; 0],
}
#[repr(C)]
struct CmdLnT {
    _opaque: [u8; 0],
}
#[repr(C)]
struct PsSegT {
    _opaque: [u8; 0],
}

#[link(name = "pocketsphinx")]
unsafe extern "C" {
    fn ps_args() -> *const c_void;
    fn ps_init(config: *mut CmdLnT) -> *mut PsDecoderT;
    fn ps_free(ps: *mut PsDecoderT) -> c_int;
    fn ps_lookup_word(ps: *mut PsDecoderT, word: *const c_char) -> *mut c_char;
    fn ps_set_jsgf_string(ps: *mut PsDecoderT, name: *const c_char, jsgf: *const c_char) -> c_int;
    fn ps_set_lm_file(ps: *mut PsDecoderT, name: *const c_char, path: *const c_char) -> c_int;
    fn ps_set_search(ps: *mut PsDecoderT, name: *const c_char) -> c_int;
    fn ps_start_stream(ps: *mut PsDecoderT) -> c_int;
    fn ps_start_utt(ps: *mut PsDecoderT) -> c_int;
    fn ps_process_raw(ps: *mut PsDecoderT, data: *const i16, n_samples: usize, no_search: c_int, full_utt: c_int) -> c_int;
    fn ps_end_utt(ps: *mut PsDecoderT) -> c_int;
    fn ps_get_hyp(ps: *mut PsDecoderT, out_best_score: *mut i32) -> *const c_char;
    fn ps_get_prob(ps: *mut PsDecoderT) -> i32;
    fn ps_get_in_speech(ps: *mut PsDecoderT) -> u8;
    fn ps_get_logmath(ps: *mut PsDecoderT) -> *mut c_void;
    fn ps_seg_iter(ps: *mut PsDecoderT) -> *mut PsSegT;
    fn ps_seg_next(seg: *mut PsSegT) -> *mut PsSegT;
    fn ps_seg_word(seg: *mut PsSegT) -> *const c_char;
    fn ps_seg_frames(seg: *mut PsSegT, out_sf: *mut c_int, out_ef: *mut c_int);
}

#[link(name = "sphinxbase")]
unsafe extern "C" {
    fn cmd_ln_init(inout: *mut CmdLnT, defn: *const c_void, strict: c_int, ...) -> *mut CmdLnT;
    fn cmd_ln_free_r(cmdln: *mut CmdLnT) -> c_int;
    fn err_set_logfp(stream: *mut c_void);
    fn ckd_free(ptr: *mut c_void);
    fn logmath_exp(lmath: *mut c_void, logb_p: c_int) -> f64;
}

/// Feature frames per second (`-frate`, left at its default).
pub const FRAMES_PER_SECOND: u32 = 100;
/// The acoustic model's sample rate (`-samprate` default; the en-us model is 16 kHz only).
pub const SAMPLE_RATE: u32 = 16_000;

/// Most `-name value` pairs a configuration may carry (see [`Decoder::new`]).
const MAX_ARGS: usize = 12;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum PsError {
    #[error("invalid decoder configuration: {0}")]
    Config(String),
    #[error("could not load the model (hmm {hmm:?}, dict {dict:?})")]
    Init { hmm: PathBuf, dict: PathBuf },
    #[error("{call} failed")]
    Call { call: &'static str },
    #[error("argument contains a NUL byte")]
    Nul,
}

/// What to load into a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Acoustic model directory.
    pub hmm: PathBuf,
    /// Pronunciation dictionary.
    pub dict: PathBuf,
    /// Statistical language model, installed as the initial search when set.
    pub lm: Option<PathBuf>,
    /// Further `-name value` decoder options (e.g. `-lw 6.5`), passed through unchecked;
    /// pocketsphinx rejects unknown names.
    pub extra: Vec<(String, String)>,
}

/// One recognised word with its frame span (frames are 1/[`FRAMES_PER_SECOND`] s, counted
/// from the last [`Decoder::start_stream`], across utterances).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub word: String,
    pub start_frame: i32,
    pub end_frame: i32,
}

pub struct Decoder {
    ps: NonNull<PsDecoderT>,
    config: NonNull<CmdLnT>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

// SAFETY: a decoder owns all of its state; pocketsphinx shares nothing mutable between
// decoders (the logger is set once, before any decoder exists). `&mut self` on every method
// keeps one thread at a time inside it.
unsafe impl Send for Decoder {}

static SILENCE_LOG: Once = Once::new();

impl Decoder {
    /// Loads the model. This is slow (hundreds of milliseconds; see BENCHMARKS.md): callers
    /// should keep decoders around instead of making one per utterance.
    pub fn new(cfg: &DecoderConfig) -> Result<Decoder, PsError> {
        // pocketsphinx logs every parameter and loading step to stderr; a server needs none of
        // that, and errors come back to us as return codes.
        // SAFETY: NULL is documented as "disable logging"; run once before any decoder exists.
        SILENCE_LOG.call_once(|| unsafe { err_set_logfp(std::ptr::null_mut()) });

        let mut pairs: Vec<(String, String)> = vec![
            ("-hmm".into(), path_str(&cfg.hmm)?),
            ("-dict".into(), path_str(&cfg.dict)?),
        ];
        if let Some(lm) = &cfg.lm {
            pairs.push(("-lm".into(), path_str(lm)?));
        }
        pairs.extend(cfg.extra.iter().cloned());
        if pairs.len() > MAX_ARGS {
            return Err(PsError::Config(format!("at most {MAX_ARGS} options")));
        }
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !n.starts_with('-')) {
            return Err(PsError::Config(format!("option {name:?} must start with '-'")));
        }
        let owned: Vec<CString> = pairs
            .iter()
            .flat_map(|(n, v)| [n.as_str(), v.as_str()])
            .map(|s| CString::new(s).map_err(|_| PsError::Nul))
            .collect::<Result<_, _>>()?;
        // cmd_ln_init is variadic and stops at the first NULL, so a fixed-arity call with the
        // unused tail set to NULL passes a list of any length up to MAX_ARGS pairs.
        let mut a = [std::ptr::null::<c_char>(); 2 * MAX_ARGS];
        for (slot, s) in a.iter_mut().zip(&owned) {
            *slot = s.as_ptr();
        }
        // SAFETY: every pointer is a valid C string or NULL, and a NULL always ends the list
        // (the 25th argument). cmd_ln_init copies the strings it keeps.
        let config = unsafe {
            cmd_ln_init(
                std::ptr::null_mut(), ps_args(), 1,
                a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23],
                std::ptr::null::<c_char>(),
            )
        };
        let config = NonNull::new(config).ok_or_else(|| PsError::Config(format!("rejected: {pairs:?}")))?;
        // SAFETY: `config` is a valid configuration; ps_init takes its own reference.
        let ps = unsafe { ps_init(config.as_ptr()) };
        match NonNull::new(ps) {
            Some(ps) => Ok(Decoder { ps, config }),
            None => {
                // SAFETY: we still own our reference to `config`.
                unsafe { cmd_ln_free_r(config.as_ptr()) };
                Err(PsError::Init { hmm: cfg.hmm.clone(), dict: cfg.dict.clone() })
            }
        }
    }

    /// Whether `word` is in the loaded dictionary.
    pub fn has_word(&mut self, word: &str) -> bool {
        let Ok(w) = CString::new(word) else { return false };
        // SAFETY: valid decoder and C string; the result is ckd-allocated and ours to free.
        unsafe {
            let phones = ps_lookup_word(self.ps.as_ptr(), w.as_ptr());
            if phones.is_null() {
                false
            } else {
                ckd_free(phones as *mut c_void);
                true
            }
        }
    }

    /// Adds (or replaces) a JSGF grammar search called `name`.
    pub fn set_jsgf(&mut self, name: &str, grammar: &str) -> Result<(), PsError> {
        let (n, g) = (cstring(name)?, cstring(grammar)?);
        // SAFETY: valid decoder and C strings; the library parses and copies the grammar.
        check(unsafe { ps_set_jsgf_string(self.ps.as_ptr(), n.as_ptr(), g.as_ptr()) }, "ps_set_jsgf_string")
    }

    /// Adds (or replaces) a language-model search called `name` from a file.
    pub fn set_lm_file(&mut self, name: &str, path: &std::path::Path) -> Result<(), PsError> {
        let (n, p) = (cstring(name)?, cstring(&path_str(path)?)?);
        // SAFETY: valid decoder and C strings.
        check(unsafe { ps_set_lm_file(self.ps.as_ptr(), n.as_ptr(), p.as_ptr()) }, "ps_set_lm_file")
    }

    /// Makes the search called `name` the active one (between utterances only).
    pub fn set_search(&mut self, name: &str) -> Result<(), PsError> {
        let n = cstring(name)?;
        // SAFETY: valid decoder and C string.
        check(unsafe { ps_set_search(self.ps.as_ptr(), n.as_ptr()) }, "ps_set_search")
    }

    /// Starts a new audio stream: resets the channel normalisation learnt from earlier audio
    /// and the frame counter that [`Segment`] frames count from. Call it per call when a
    /// decoder is reused.
    pub fn start_stream(&mut self) -> Result<(), PsError> {
        // SAFETY: valid decoder.
        check(unsafe { ps_start_stream(self.ps.as_ptr()) }, "ps_start_stream")
    }

    pub fn start_utt(&mut self) -> Result<(), PsError> {
        // SAFETY: valid decoder.
        check(unsafe { ps_start_utt(self.ps.as_ptr()) }, "ps_start_utt")
    }

    /// Feeds 16 kHz mono samples and searches them at once (streaming).
    pub fn process(&mut self, samples: &[i16]) -> Result<(), PsError> {
        // SAFETY: the slice is valid for `len` samples during the call; the library copies.
        let n = unsafe { ps_process_raw(self.ps.as_ptr(), samples.as_ptr(), samples.len(), 0, 0) };
        if n < 0 { Err(PsError::Call { call: "ps_process_raw" }) } else { Ok(()) }
    }

    pub fn end_utt(&mut self) -> Result<(), PsError> {
        // SAFETY: valid decoder.
        check(unsafe { ps_end_utt(self.ps.as_ptr()) }, "ps_end_utt")
    }

    /// The best hypothesis so far (partial during an utterance, final after `end_utt`).
    pub fn hyp(&mut self) -> Option<String> {
        let mut score = 0i32;
        // SAFETY: valid decoder; the returned string is owned by the decoder and valid until
        // the next call into it, so we copy it at once.
        let p = unsafe { ps_get_hyp(self.ps.as_ptr(), &mut score) };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL, NUL-terminated, see above.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_owned();
        (!s.is_empty()).then_some(s)
    }

    /// Posterior probability of the final hypothesis in 0..=1, as far as the active search
    /// computes one.
    pub fn probability(&mut self) -> f64 {
        // SAFETY: valid decoder; the logmath object belongs to it.
        unsafe {
            let prob = ps_get_prob(self.ps.as_ptr());
            logmath_exp(ps_get_logmath(self.ps.as_ptr()), prob).clamp(0.0, 1.0)
        }
    }

    /// Whether the decoder's own voice-activity detector hears speech in this utterance.
    pub fn in_speech(&mut self) -> bool {
        // SAFETY: valid decoder.
        unsafe { ps_get_in_speech(self.ps.as_ptr()) != 0 }
    }

    /// Word segmentation of the current hypothesis, fillers and silences included.
    pub fn segments(&mut self) -> Vec<Segment> {
        let mut out = Vec::new();
        // SAFETY: valid decoder; the iterator is walked to its end, where ps_seg_next frees it
        // and returns NULL, and each word string is copied before advancing.
        unsafe {
            let mut seg = ps_seg_iter(self.ps.as_ptr());
            while !seg.is_null() {
                let (mut sf, mut ef) = (0, 0);
                ps_seg_frames(seg, &mut sf, &mut ef);
                let w = ps_seg_word(seg);
                if !w.is_null() {
                    let word = CStr::from_ptr(w).to_string_lossy().into_owned();
                    out.push(Segment { word, start_frame: sf, end_frame: ef });
                }
                seg = ps_seg_next(seg);
            }
        }
        out
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: we own one reference to each; the decoder goes first because it uses the
        // configuration.
        unsafe {
            ps_free(self.ps.as_ptr());
            cmd_ln_free_r(self.config.as_ptr());
        }
    }
}

fn check(code: c_int, call: &'static str) -> Result<(), PsError> {
    if code < 0 { Err(PsError::Call { call }) } else { Ok(()) }
}

fn cstring(s: &str) -> Result<CString, PsError> {
    CString::new(s).map_err(|_| PsError::Nul)
}

fn path_str(p: &std::path::Path) -> Result<String, PsError> {
    p.to_str().map(str::to_owned).ok_or_else(|| PsError::Config(format!("path {p:?} is not UTF-8")))
}
