//! The only `unsafe` code in the server: small, safe wrappers over the two C speech engines
//! the embedded default links in-process (Debian `libespeak-ng-dev`, `libpocketsphinx-dev`).
//!
//! Each wrapper owns its raw pointers, frees them in `Drop`, turns C status codes into typed
//! errors and states the threading rule of its engine in the type: the espeak-ng engine is
//! process-global and lives on one worker thread; a pocketsphinx decoder is `Send` but not
//! `Sync`, so exactly one thread drives it at a time.

pub mod espeak;
pub mod pocketsphinx;
