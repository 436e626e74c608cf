//! latch-fuzz: the fuzz harnesses of latch, one function per fuzz target.
//!
//! One job: drive the real parsers of everything latch reads from outside with
//! arbitrary bytes, and assert what must hold whatever arrives: nothing panics, a loader
//! returns an error rather than half-loading, what decodes encodes back to the same
//! value, nothing authenticates without the key. Each `pub fn <target>(data: &[u8])`
//! panics exactly when an invariant breaks, which is what the fuzzer reports.
//!
//! The functions are plain Rust, so the same code runs three ways:
//!
//! - under libFuzzer, through the cargo-fuzz package in `fuzz/` (outside the workspace;
//!   `cargo xtask fuzz <target> [--seconds N]` runs it);
//! - on stable in the test suite, which replays every committed seed in
//!   `corpus/<target>/` and every past crash in `regressions/<target>/`;
//! - from a debugger or a unit test, with one input.
//!
//! It must not be a dependency of any other crate: it depends on all of them. Harnesses
//! do no network IO; the store targets write their input to a private scratch directory
//! (under `/dev/shm` where it exists) because the store reads only from disk.
//!
//! ```
//! // Control byte 0 (the 256-byte pre-authentication limit), then a header announcing
//! // 41 bytes and no payload: the decoder must report a truncated frame, not wait.
//! latch_fuzz::frame_decoder(&[0, 0, 0, 0, 41]);
//! for (name, target) in latch_fuzz::TARGETS {
//!     target(b"");
//!     assert!(!name.is_empty());
//! }
//! ```

mod config;
mod http;
mod ipc;
mod otpauth;
mod policy;
pub mod seeds;
mod store;
mod token;

pub use config::config;
pub use http::http_input;
pub use ipc::{frame_decoder, handshake_server};
pub use otpauth::otpauth;
pub use policy::policy;
pub use store::{store_journal, store_snapshot};
pub use token::token_validation;

/// A fuzz target: takes any bytes, panics only when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, in the order `cargo xtask fuzz all` runs them.
pub const TARGETS: [(&str, Target); 9] = [
    ("frame_decoder", frame_decoder),
    ("handshake_server", handshake_server),
    ("token_validation", token_validation),
    ("store_snapshot", store_snapshot),
    ("store_journal", store_journal),
    ("policy", policy),
    ("config", config),
    ("otpauth", otpauth),
    ("http_input", http_input),
];

/// Runs a future over in-memory streams, which are always ready, to completion in one
/// poll. Panics if it is still pending: with nothing to wait for, that is a hang.
pub(crate) fn run_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("pending on an always-ready in-memory stream"),
    }
}

/// The value of `result`; panics naming `what` otherwise (harness code: a failure here is
/// a finding).
pub(crate) fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e}"),
    }
}
