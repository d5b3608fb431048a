//! Record and replay: a small market report that reads the clock, draws a random seed and makes
//! two slow marked calls.
//!
//! `devstash run` gives a different report every time: another date, another seed, and so another
//! simulation. `devstash record` captures one run to a tape; `devstash replay` plays it back
//! offline, byte for byte (same date, same seed, same timings), and runs neither slow call.
//!
//! ```text
//! devstash record target/wasm32-wasip1/release/replay.wasm -- ACME GLOBEX
//! devstash replay --verify target/wasm32-wasip1/release/replay.wasm
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devstash::{stash, stashed};

/// Stands in for a slow, paid market API: one request per symbol, kept for a day.
#[stashed(ttl = "1d")]
fn fetch_prices(symbol: String) -> Vec<f64> {
    println!("  (asking the market API for {symbol}...)");
    std::thread::sleep(Duration::from_millis(800));
    // A made-up but stable series: the same symbol always gets the same prices.
    let mut state = symbol.bytes().fold(0x9e37_79b9_7f4a_7c15, |h: u64, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut price = 50.0 + (state % 100) as f64;
    (0..30)
        .map(|_| {
            state = xorshift(state);
            price *= 1.0 + ((state % 2001) as f64 - 1000.0) / 40_000.0;
            price
        })
        .collect()
}

/// A Monte Carlo estimate of the one-day 95% value at risk of an equally weighted basket: slow,
/// and keyed by its random seed, so each `devstash run` computes a new one.
fn value_at_risk(prices: &[Vec<f64>], seed: u64, paths: u32) -> f64 {
    let returns: Vec<Vec<f64>> = prices
        .iter()
        .map(|p| p.windows(2).map(|w| w[1] / w[0] - 1.0).collect())
        .collect();
    let mut state = seed | 1;
    let mut losses: Vec<f64> = (0..paths)
        .map(|_| {
            let basket: f64 = returns
                .iter()
                .map(|r| {
                    state = xorshift(state);
                    r[(state % r.len() as u64) as usize]
                })
                .sum::<f64>()
                / returns.len() as f64;
            -basket
        })
        .collect();
    losses.sort_by(f64::total_cmp);
    losses[(losses.len() as f64 * 0.95) as usize]
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// `YYYY-MM-DD` of a Unix time (days to civil date, proleptic Gregorian calendar).
fn date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() {
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("randomness is available");
    let seed = u64::from_le_bytes(seed);

    let mut symbols: Vec<String> = std::env::args().skip(1).collect();
    if symbols.is_empty() {
        symbols = vec!["ACME".into(), "GLOBEX".into()];
    }

    println!(
        "market report for {} (seed {seed:016x})",
        date(now.as_secs())
    );
    let mut series = Vec::new();
    for symbol in &symbols {
        let prices = fetch_prices(symbol.clone());
        let last = prices.last().copied().unwrap_or_default();
        let mean = prices.iter().sum::<f64>() / prices.len().max(1) as f64;
        println!("{symbol:>8}: last {last:8.2}, 30-day mean {mean:8.2}");
        series.push(prices);
    }
    let var = stash!(value_at_risk(&series, seed, 400_000));
    println!("95% one-day value at risk: {:.2}%", var * 100.0);
    println!("done in {:.2?}", started.elapsed());
}
