//! Restoring and storing numeric vectors: the straight path (`RawValue`) against postcard's
//! generic decode and encode of the same bytes, side by side in one run.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use devstash::__rt::RawValue;
use devstash::__rt::raw::SliceSource;

const N: usize = 4 << 20;

fn f64s() -> Vec<f64> {
    (0..N).map(|i| i as f64 * 0.37).collect()
}

fn u64s() -> Vec<u64> {
    (0..N as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9) >> (i % 40))
        .collect()
}

fn restore<T>(c: &mut Criterion, name: &str, value: Vec<T>)
where
    Vec<T>: RawValue + serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = postcard::to_allocvec(&value).unwrap();
    let mut g = c.benchmark_group(format!("restore {name}"));
    g.throughput(Throughput::Bytes((size_of::<T>() * value.len()) as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("straight", N), |b| {
        b.iter(|| Vec::<T>::decode(&mut SliceSource(black_box(&bytes))).unwrap())
    });
    g.bench_function(BenchmarkId::new("postcard", N), |b| {
        b.iter(|| postcard::from_bytes::<Vec<T>>(black_box(&bytes)).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group(format!("store {name}"));
    g.throughput(Throughput::Bytes((size_of::<T>() * value.len()) as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("straight", N), |b| {
        b.iter(|| black_box(&value).encode().unwrap())
    });
    g.bench_function(BenchmarkId::new("postcard", N), |b| {
        b.iter(|| postcard::to_allocvec(black_box(&value)).unwrap())
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    restore(c, "Vec<f64>", f64s());
    restore(c, "Vec<u64>", u64s());
}

criterion_group!(raw, benches);
criterion_main!(raw);
