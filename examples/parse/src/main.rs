//! Large-file parsing through a granted directory: the parse runs once, later runs read the
//! stored summary.
//!
//! ```sh
//! devstash run --dir data::/data:ro target/wasm32-wasip1/release/parse.wasm /data/weather.csv
//! ```
//!
//! The file is passed as a `devstash::FileKey`: the key is its path, size and modification
//! time, so editing the file invalidates the entry while re-running on the same file does not
//! re-parse it.

use std::collections::BTreeMap;

use devstash::{FileKey, stash};
use serde::{Deserialize, Serialize};

/// What the parse produces: rows and per-key statistics of the second column.
#[derive(Debug, Serialize, Deserialize)]
struct Summary {
    rows: usize,
    columns: Vec<String>,
    by_key: BTreeMap<String, (u64, f64)>,
}

/// Parses a CSV file whose first column is a key and second a number.
fn parse_csv(file: FileKey) -> Result<Summary, String> {
    let path = file.path().display();
    println!("parsing {path}");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut lines = text.lines();
    let columns = lines
        .next()
        .ok_or_else(|| format!("{path} is empty"))?
        .split(',')
        .map(str::to_string)
        .collect();
    let mut rows = 0;
    let mut sums: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let mut fields = line.split(',');
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            return Err(format!("{path}:{}: expected two columns", i + 2));
        };
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{path}:{}: {value:?} is not a number", i + 2))?;
        let slot = sums.entry(key.to_string()).or_default();
        slot.0 += 1;
        slot.1 += value;
        rows += 1;
    }
    let by_key = sums
        .into_iter()
        .map(|(k, (n, sum))| (k, (n, sum / n as f64)))
        .collect();
    Ok(Summary {
        rows,
        columns,
        by_key,
    })
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/data/weather.csv".into());
    let label = std::env::var("PARSE_LABEL").unwrap_or_else(|_| "summary".into());
    // The path, size and modification time: one metadata call, the file is not read.
    let file = match FileKey::identity(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open {path}: {e} (grant its directory with --dir HOST::GUEST)");
            std::process::exit(1);
        }
    };
    match stash!(ttl = "1d", parse_csv(file)) {
        Ok(s) => {
            println!("{label}: {} rows, columns {:?}", s.rows, s.columns);
            for (key, (n, mean)) in s.by_key.iter().take(5) {
                println!("  {key}: {n} rows, mean {mean:.2}");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
