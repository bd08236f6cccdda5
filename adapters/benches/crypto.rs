//! Criterion benchmarks of the crypto adapter (placeholder while written).

fn main() {}
