//! The machine's caches, and evicting them before a cold timed run.

use std::path::Path;

/// The caches of the core the profiler runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Its private data caches together (levels 1 and 2).
    pub private_bytes: usize,
    /// The largest cache it reports (the shared last level; on a VM, often the host's).
    pub largest_bytes: usize,
}

impl CacheSizes {
    const FALLBACK_PRIVATE: usize = 1 << 20;
    const FALLBACK_LARGEST: usize = 32 << 20;

    /// From `/sys/devices/system/cpu/cpu0/cache` (1 MiB private and 32 MiB shared where it
    /// reports nothing).
    pub fn of_this_machine() -> Self {
        let caches = reported_caches();
        let private: usize = caches.iter().filter(|c| c.0 <= 2 && c.1 != "Instruction").map(|c| c.2).sum();
        let largest = caches.iter().map(|c| c.2).max();
        Self {
            private_bytes: if private == 0 { Self::FALLBACK_PRIVATE } else { private },
            largest_bytes: largest.unwrap_or(Self::FALLBACK_LARGEST),
        }
    }
}

/// The share of a last-level cache one core is assumed to find its data in, when the machine
/// reports a larger one: a VM reports the host's whole shared cache (480 MiB on one cloud
/// machine), of which a vCPU competes for a slice with every other tenant.
pub const LAST_LEVEL_SHARE: usize = 32 << 20;

/// Bytes [`CacheEvictor`] reads before every cold timed run of a stage of a model whose stages
/// together touch `model_working_set` bytes (weights, and tensors in and out): twice what a
/// stage can find in cache in a run, that is, twice the larger of that working set (the other
/// stages of the model run between two runs of a stage) and the caches one core really has
/// (its private ones plus [`LAST_LEVEL_SHARE`]); never more than twice the largest cache
/// reported, nor 512 MiB. Twice the reported last level alone made `lalarand demo` take 245 s
/// instead of about 50 on a VM that reports 480 MiB. On this machine (32 MiB reported) it is
/// the same 64 MiB as before: sizing it from a stage's own and its neighbours' working sets (a
/// few MiB) could not be shown to keep WCETs honest (docs/evaluation.md, "Profiling fast on
/// any machine").
pub fn eviction_bytes(model_working_set: usize, caches: &CacheSizes) -> usize {
    let core = caches.private_bytes + LAST_LEVEL_SHARE;
    (2 * model_working_set.max(core)).min(2 * caches.largest_bytes).min(CacheEvictor::MAX_BYTES)
}

/// Evicts caches by reading one byte per cache line of a buffer, before the clock of a timed
/// run starts. Reads displace lines as writes do, without writing the buffer back to memory
/// (1.4x faster than writing on this machine: 14 against 21 ms per 64 MiB under load).
pub struct CacheEvictor {
    buffer: Vec<u8>,
}

impl CacheEvictor {
    const MAX_BYTES: usize = 512 << 20;
    const LINE: usize = 64;

    /// An evictor of the whole hierarchy: twice the largest cache the machine reports.
    pub fn new() -> Self {
        Self::with_capacity(2 * CacheSizes::of_this_machine().largest_bytes)
    }

    /// An evictor that writes `bytes` (at most 512 MiB; see [`eviction_bytes`]).
    pub fn with_capacity(bytes: usize) -> Self {
        // Written once, so that every page is backed by memory of its own.
        Self { buffer: vec![1; bytes.clamp(Self::LINE, Self::MAX_BYTES)] }
    }

    /// What [`Self::evict`] writes.
    pub fn bytes(&self) -> usize {
        self.buffer.len()
    }

    pub fn evict(&mut self) {
        let sum = self.buffer.iter().step_by(Self::LINE).fold(0u8, |s, b| s.wrapping_add(std::hint::black_box(*b)));
        std::hint::black_box(sum);
    }
}

impl Default for CacheEvictor {
    fn default() -> Self {
        Self::new()
    }
}

/// (level, type, bytes) of every cache in `/sys/devices/system/cpu/cpu0/cache/index*`.
fn reported_caches() -> Vec<(u32, String, usize)> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else { return Vec::new() };
    let read = |p: &Path, f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_string());
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        let level = read(&p, "level")?.parse().ok()?;
        let ty = read(&p, "type").unwrap_or_default();
        Some((level, ty, parse_size(&read(&p, "size")?)?))
    })
    .collect()
}

/// "32768K" -> 32 MiB.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: usize = digits.parse().ok()?;
    Some(match unit {
        "K" => n << 10,
        "M" => n << 20,
        "G" => n << 30,
        _ => n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VM that reports the host's 480 MiB last level: a small model writes twice a core's
    /// caches (66 MiB), a large one twice its working set, never 960 MiB; where the reported
    /// last level is real (32 MiB here) it is twice that, as before.
    #[test]
    fn eviction_follows_the_working_set_not_the_reported_last_level() {
        let vm = CacheSizes { private_bytes: 1 << 20, largest_bytes: 480 << 20 };
        assert_eq!(eviction_bytes(2 << 20, &vm), 66 << 20);
        assert_eq!(eviction_bytes(100 << 20, &vm), 200 << 20);
        assert_eq!(eviction_bytes(1 << 30, &vm), 512 << 20);
        let here = CacheSizes { private_bytes: (1 << 20) + (32 << 10), largest_bytes: 32 << 20 };
        assert_eq!(eviction_bytes(2 << 20, &here), 64 << 20);
        assert_eq!(eviction_bytes(100 << 20, &here), 64 << 20);
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("x"), None);
    }
}
