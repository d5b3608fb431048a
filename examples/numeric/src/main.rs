//! A heavy numeric computation with stashed intermediate results: a synthetic data set and a
//! linear model trained on it by gradient descent. Change the evaluation code freely: neither
//! the data nor the training runs again. Change `epochs` and only the training reruns.
//!
//! ```sh
//! devstash run target/wasm32-wasip1/release/numeric.wasm 500
//! ```

use devstash::stashed;
use serde::{Deserialize, Serialize};

/// A fitted model `y = w * x + b`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Model {
    w: f64,
    b: f64,
    loss: f64,
}

/// A deterministic pseudo-random stream (64-bit LCG), so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` noisy samples of `y = 3x + 2`.
#[stashed]
fn make_dataset(n: usize, seed: u64) -> Vec<(f64, f64)> {
    println!("generating {n} samples");
    let mut rng = Lcg(seed);
    (0..n)
        .map(|_| {
            let x = rng.next_f64() * 10.0;
            let noise = (rng.next_f64() - 0.5) * 0.5;
            (x, 3.0 * x + 2.0 + noise)
        })
        .collect()
}

/// Full-batch gradient descent on mean squared error.
#[stashed(ttl = "1w")]
fn train(n: usize, seed: u64, epochs: u32, rate: f64) -> Model {
    let data = make_dataset(n, seed);
    println!("training for {epochs} epochs on {} samples", data.len());
    let (mut w, mut b) = (0.0f64, 0.0f64);
    let m = data.len() as f64;
    for _ in 0..epochs {
        let (mut gw, mut gb) = (0.0, 0.0);
        for &(x, y) in &data {
            let err = w * x + b - y;
            gw += err * x;
            gb += err;
        }
        w -= rate * 2.0 * gw / m;
        b -= rate * 2.0 * gb / m;
    }
    let loss = data
        .iter()
        .map(|&(x, y)| (w * x + b - y).powi(2))
        .sum::<f64>()
        / m;
    Model { w, b, loss }
}

fn main() {
    let epochs: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let model = train(1_000_000, 42, epochs, 0.02);
    println!(
        "model: y = {:.3}x + {:.3} (mse {:.4})",
        model.w, model.b, model.loss
    );
    for x in [0.0, 5.0, 10.0] {
        println!("  predict({x}) = {:.3}", model.w * x + model.b);
    }
}
