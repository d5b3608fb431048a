//! The WASI preview 1 imports that record and replay put in place of wasmtime-wasi's own.
//!
//! - `random_get`: wasmtime-wasi draws one `u32` from its RNG per requested byte, so a wrapped
//!   RNG would see neither the guest's requests nor its bytes. Taking over the import records
//!   (and serves) exactly the bytes each request received.
//! - `clock_time_get` (replay): served from the tape. A tape clock that runs out is a divergence,
//!   and this import can stop the guest right at that read (a `HostWallClock` cannot fail).
//! - `poll_oneoff` (replay): a poll on clocks only (a sleep, a timer, an absolute deadline)
//!   returns at once, the earliest clock firing, since the clock readings that follow come from
//!   the tape anyway ([`instant_sleep`]). Every other poll waits on a descriptor too, and is
//!   answered from the tape with the other calls on descriptors (see `syscall`).

use std::time::Duration;

use wasmtime::{Caller, Extern, Linker, Memory, Result, bail, format_err};

use crate::runtime::Ctx;

/// The WASI preview 1 import module.
pub const WASI: &str = "wasi_snapshot_preview1";

/// `errno::success`.
const ERRNO_SUCCESS: i32 = 0;
/// `errno::badf`: what WASI answers for the CPU-time clocks.
const ERRNO_BADF: i32 = 8;
/// `errno::inval`: an unknown clock id.
const ERRNO_INVAL: i32 = 28;
/// `errno::overflow`: a wall time that does not fit in 64-bit nanoseconds.
const ERRNO_OVERFLOW: i32 = 61;
/// Largest `random_get` served, as wasmtime-wasi's default limit.
const MAX_RANDOM: usize = 64 << 20;

/// Size of a `subscription` and an `event` in WASI preview 1.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

fn guest_memory(caller: &mut Caller<'_, Ctx>) -> Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        // As wasmtime-wasi: WASI needs the guest's memory.
        _ => bail!("missing required memory export"),
    }
}

/// `ptr..ptr+len` if it lies inside a memory of `size` bytes.
fn range(ptr: i32, len: usize, size: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

/// Puts a `random_get` in place that fills the guest's buffer with `fill`. An error from `fill`
/// (a replay that ran out of recorded bytes) traps the guest.
pub fn random_get(
    linker: &mut Linker<Ctx>,
    fill: impl Fn(&mut [u8]) -> Result<()> + Send + Sync + 'static,
) -> Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        WASI,
        "random_get",
        move |mut caller: Caller<'_, Ctx>, ptr: i32, len: i32| -> Result<i32> {
            let mem = guest_memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            let len = len as u32 as usize;
            if len > MAX_RANDOM {
                bail!("random_get: requested {len} bytes, more than the limit of {MAX_RANDOM}");
            }
            let r = range(ptr, len, data.len()).ok_or_else(|| {
                format_err!("random_get: the buffer lies outside the guest's memory")
            })?;
            fill(&mut data[r])?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The clocks of a replay, as the replacement imports see them.
pub trait TapeTime: Send + Sync + 'static {
    /// The next wall clock reading, or an error if the tape has none left.
    fn wall(&self) -> Result<Duration>;
    /// The next monotonic clock reading in nanoseconds, or an error if the tape has none left.
    fn monotonic(&self) -> Result<u64>;
    /// The last reading served of clock `id` (0 realtime, 1 monotonic), in nanoseconds.
    fn last(&self, id: u32) -> u64;
}

/// Replay's `clock_time_get` (see the module docs).
pub fn replay_time(linker: &mut Linker<Ctx>, time: impl TapeTime) -> Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        WASI,
        "clock_time_get",
        move |mut caller: Caller<'_, Ctx>, id: i32, _precision: i64, out: i32| -> Result<i32> {
            let now = match id {
                0 => {
                    let wall = time.wall()?;
                    match wall
                        .as_secs()
                        .checked_mul(1_000_000_000)
                        .and_then(|ns| ns.checked_add(u64::from(wall.subsec_nanos())))
                    {
                        Some(ns) => ns,
                        None => return Ok(ERRNO_OVERFLOW),
                    }
                }
                1 => time.monotonic()?,
                2 | 3 => return Ok(ERRNO_BADF),
                _ => return Ok(ERRNO_INVAL),
            };
            let mem = guest_memory(&mut caller)?;
            let data = mem.data_mut(&mut caller);
            // As wasmtime-wasi: a misaligned or out-of-bounds result pointer traps.
            let r = range(out, 8, data.len())
                .filter(|_| (out as u32).is_multiple_of(8))
                .ok_or_else(|| {
                    format_err!("clock_time_get: the result pointer is misaligned or out of bounds")
                })?;
            data[r].copy_from_slice(&now.to_le_bytes());
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Answers at once a poll whose subscriptions are all on the realtime or monotonic clock,
/// relative or absolute, as if the time had passed: the earliest one fires. A deadline is
/// judged against the last reading the replay served of its clock, never a real clock, so no
/// deadline, however far (or past the end of the tape), makes a replay wait. Returns false (and
/// touches nothing) for anything else, which then takes the normal path.
///
/// The layout is WASI preview 1's: a `subscription` is `userdata: u64`, a tag byte at 8
/// (0 = clock), then `id: u32` at 16, `timeout: u64` at 24, `precision: u64` at 32 and
/// `flags: u16` at 40 (bit 0: absolute time); an `event` is `userdata: u64`, `error: u16` at 8,
/// `type: u8` at 10 and `fd_readwrite` at 16..32.
pub fn instant_sleep(
    caller: &mut Caller<'_, Ctx>,
    time: &impl TapeTime,
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> Result<bool> {
    let mem = guest_memory(caller)?;
    let data = mem.data_mut(caller);
    let n = n as u32 as usize;
    // Misaligned pointers go to wasmtime-wasi, which traps on them.
    if n == 0
        || !(subs as u32).is_multiple_of(8)
        || !(events as u32).is_multiple_of(8)
        || !(nevents as u32).is_multiple_of(4)
    {
        return Ok(false);
    }
    let (Some(all), Some(ev), Some(out)) = (
        n.checked_mul(SUBSCRIPTION_SIZE)
            .and_then(|len| range(subs, len, data.len())),
        range(events, EVENT_SIZE, data.len()),
        range(nevents, 4, data.len()),
    ) else {
        return Ok(false);
    };
    let mut earliest: Option<(u64, [u8; 8])> = None;
    let mut lone_relative = n == 1;
    for sub in data[all].chunks_exact(SUBSCRIPTION_SIZE) {
        let tag = sub[8];
        let id = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes"));
        // Clock ids 0 (realtime) and 1 (monotonic); the CPU-time clocks are refused by WASI.
        if tag != 0 || id > 1 {
            return Ok(false);
        }
        let timeout = u64::from_le_bytes(sub[24..32].try_into().expect("8 bytes"));
        let flags = u16::from_le_bytes(sub[40..42].try_into().expect("2 bytes"));
        lone_relative &= flags & 1 == 0;
        let wait = if flags & 1 != 0 {
            timeout.saturating_sub(time.last(id))
        } else {
            timeout
        };
        if earliest.is_none_or(|(w, _)| wait < w) {
            earliest = Some((wait, sub[0..8].try_into().expect("8 bytes")));
        }
    }
    let Some((_, userdata)) = earliest else {
        return Ok(false);
    };
    let mut event = [0u8; EVENT_SIZE];
    event[0..8].copy_from_slice(&userdata);
    // error = success (0), type = clock (0), fd_readwrite zeroed: what wasmtime-wasi writes,
    // except for a lone relative clock, which it sleeps on the guest's thread (the sandbox
    // allows blocking it) and answers with `nbytes` 1: the replay writes the same bytes.
    if lone_relative {
        event[16..24].copy_from_slice(&1u64.to_le_bytes());
    }
    data[ev].copy_from_slice(&event);
    data[out].copy_from_slice(&1u32.to_le_bytes());
    Ok(true)
}
