//! The devstash guest SDK: mark slow or expensive calls so that the `devstash` runner stores
//! their results and returns them on later runs.
//!
//! ```ignore
//! use devstash::{stash, stashed};
//!
//! fn slow_function(x: u64) -> u64 { /* seconds of work */ x * 2 }
//!
//! // Inline, on a call: the successor of the Python devstash's `# @devstash` line marker.
//! let v = stash!(slow_function(10));
//! let w = stash!(ttl = "24h", slow_function(20));
//!
//! // On a definition: every call is stored; for a `Result`, only `Ok` values are.
//! #[stashed(ttl = "1d")]
//! fn fetch_repo(name: &str) -> Result<String, std::io::Error> { /* ... */ }
//! ```
//!
//! Arguments (and a method call's receiver) must implement `serde::Serialize`; the value must
//! implement `serde::Serialize` and `serde::de::DeserializeOwned`. Anything else is a compile
//! error at the marker, never a silent shared key. What goes into a key (the callee as the
//! compiler resolved it, the concrete types, the value type's shape, the arguments in a
//! canonical encoding) is described in [`key`] and [`shape`] and in the README's "What is in a
//! key". A secret argument goes in a [`Secret`]; a file the call reads goes in a [`FileKey`],
//! so that editing the file computes the call again. A `Vec<u8>`, `String`,
//! `serde_bytes::ByteBuf`, or a `Vec` of plain numbers (`f64`, `f32`, `i64`, `u64`, `i32`, `u32`,
//! `i16`, `u16`, `i8`, or fixed arrays of them such as `[f64; 3]`), alone or as the `Ok` of a
//! `Result`, is restored straight into its own buffer, with no second copy: the type to return
//! from a call whose result is large. Floats and bytes are read in one piece; wider integers are
//! stored as postcard's varints and decoded as they arrive.
//!
//! Built for any target other than `wasm32`, the markers are plain calls, so the same code
//! builds and runs natively.
//!
//! The attribute is called `stashed` rather than `stash` because Rust does not let one crate
//! export a function-like macro and an attribute macro under the same name.

#![warn(missing_docs)]

pub use devstash_macros::{stash, stashed};
pub use devstash_protocol as protocol;
pub use file::FileKey;
pub use secret::Secret;

mod file;
pub mod http;
pub mod key;
pub mod log;
mod secret;
pub mod shape;

#[doc(hidden)]
pub mod __rt;

#[cfg(target_arch = "wasm32")]
mod abi;
