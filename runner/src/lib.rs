//! The devstash runner as a library: the `devstash` binary is a thin shell over it, and the
//! benchmarks and fuzz targets call its parts directly.
//!
//! Data flows one way: [`cli`] → [`run`] (with [`engine`] and [`sandbox`]) → [`host`] (the
//! imports) → [`store`].

pub mod cli;
pub mod engine;
pub mod exit;
pub mod host;
pub mod inspect;
pub mod manage;
pub mod net;
pub mod run;
pub mod sandbox;
pub mod store;
pub mod tape;
