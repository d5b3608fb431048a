//! The guest's output streams under record and replay: output goes to the real stdout/stderr
//! and is also handed to a [`Capture`] (the recorder, or the player for `--verify`). What the
//! guest reads from stdin is recorded with every other read (see `syscall`).

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::format::Stream;

/// Receives what the guest writes and reads.
pub trait Capture: Send + 'static {
    /// The guest wrote `bytes` to `stream` (already on the real stream). An error stops the guest
    /// (a recording that would pass its limit).
    fn output(&mut self, stream: Stream, bytes: &[u8]) -> wasmtime::Result<()>;
}

/// Locks shared state, also after a panic elsewhere (the state stays usable for the report).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `bytes` to the real stdout or stderr.
pub fn write_real(stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
    match stream {
        Stream::Stdout => std::io::stdout().write_all(bytes),
        Stream::Stderr => std::io::stderr().write_all(bytes),
    }
}

fn flush_real(stream: Stream) -> std::io::Result<()> {
    match stream {
        Stream::Stdout => std::io::stdout().flush(),
        Stream::Stderr => std::io::stderr().flush(),
    }
}

fn stream_error(e: std::io::Error) -> StreamError {
    // Same mapping as wasmtime-wasi's own stdio: a closed pipe is a closed stream (EPIPE).
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StreamError::Closed
    } else {
        StreamError::LastOperationFailed(e.into())
    }
}

/// A guest output stream that tees to the real one and to a [`Capture`].
pub struct TeeOutput<C: Capture> {
    stream: Stream,
    tty: bool,
    capture: Arc<Mutex<C>>,
}

impl<C: Capture> TeeOutput<C> {
    /// The guest's `stream`, reporting `tty` as its terminal status.
    pub fn new(stream: Stream, tty: bool, capture: Arc<Mutex<C>>) -> Self {
        TeeOutput {
            stream,
            tty,
            capture,
        }
    }

    fn writer(&self) -> TeeWriter<C> {
        TeeWriter {
            stream: self.stream,
            capture: self.capture.clone(),
        }
    }
}

impl<C: Capture> IsTerminal for TeeOutput<C> {
    fn is_terminal(&self) -> bool {
        self.tty
    }
}

impl<C: Capture> StdoutStream for TeeOutput<C> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

struct TeeWriter<C: Capture> {
    stream: Stream,
    capture: Arc<Mutex<C>>,
}

impl<C: Capture> TeeWriter<C> {
    fn put(&self, bytes: &[u8]) -> StreamResult<()> {
        write_real(self.stream, bytes).map_err(stream_error)?;
        lock(&self.capture)
            .output(self.stream, bytes)
            .map_err(StreamError::Trap)
    }
}

impl<C: Capture> OutputStream for TeeWriter<C> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.put(&bytes)
    }
    fn flush(&mut self) -> StreamResult<()> {
        flush_real(self.stream).map_err(stream_error)
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Writes complete synchronously: any size is accepted at once.
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl<C: Capture> Pollable for TeeWriter<C> {
    async fn ready(&mut self) {}
}

impl<C: Capture> AsyncWrite for TeeWriter<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.put(buf)
                .map(|()| buf.len())
                .map_err(|e| std::io::Error::other(e.to_string())),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(flush_real(self.stream))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
