//! The runner's own exit codes. Any other code is the guest's: `devstash run` exits with the
//! code the guest passed to `proc_exit` (0 when `main` returns).

/// A guest trapped (a panic, an out-of-bounds access, a protocol violation), as wasmtime does.
pub const TRAP: i32 = 134;
/// devstash itself failed before or around the guest: bad module, bad flag value, unreadable
/// file. The message says what to do.
pub const RUNNER_ERROR: i32 = 125;
/// The guest hit a limit: `--timeout`, `--max-memory` or `--fuel` (as `timeout(1)` does).
pub const LIMIT: i32 = 124;
/// A replay met a call the tape cannot answer (divergence report on stderr).
pub const DIVERGENCE: i32 = 123;
/// `replay --verify` found output that differs from the recording (diff on stderr).
pub const VERIFY_FAILED: i32 = 122;
