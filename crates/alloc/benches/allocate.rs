//! Target (issue 2): `lalarand` allocation of a 10-task set in under 20 milliseconds.

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(_c: &mut Criterion) {}

criterion_group!(benches, bench);
criterion_main!(benches);
