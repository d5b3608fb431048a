//! Log lines that go through the runner's logger (shown with `devstash run -v`, filtered by
//! `DEVSTASH_LOG`). Natively they go to stderr.

use devstash_protocol::LogLevel;

/// Writes one log line at the given level.
pub fn write(level: LogLevel, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the pointer and length describe `msg`, which lives for the whole call.
    unsafe {
        crate::abi::log(level as i32, msg.as_ptr(), msg.len());
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {msg}");
}

/// Logs at info level: `devstash::info!("loaded {} rows", n)`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::protocol::LogLevel::Info, &::std::format!($($arg)*)) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::protocol::LogLevel::Warn, &::std::format!($($arg)*)) };
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::protocol::LogLevel::Debug, &::std::format!($($arg)*)) };
}
