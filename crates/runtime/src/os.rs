//! The OS facilities a real-time run needs: a monotonic clock, sleeping until an absolute
//! time, pinning, and SCHED_FIFO. Linux only (libc); failures are reported, never fatal,
//! except where a run would be meaningless without them.

use lalarand_model::Time;
use std::sync::atomic::{AtomicBool, Ordering};

/// Sleeping ends this long before a release and the rest is spun: a sleeping thread wakes
/// late by the timer slack and the scheduler's latency, tens of microseconds.
const SPIN_NS: Time = 50_000;

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> Time {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as Time * 1_000_000_000 + ts.tv_nsec as Time
}

/// Sleeps until the absolute monotonic time `target_ns` (no drift: the target is absolute),
/// spinning the last `SPIN_NS`.
pub fn sleep_until(target_ns: Time) {
    let coarse = target_ns.saturating_sub(SPIN_NS);
    if monotonic_ns() < coarse {
        let ts = libc::timespec {
            tv_sec: (coarse / 1_000_000_000) as libc::time_t,
            tv_nsec: (coarse % 1_000_000_000) as libc::c_long,
        };
        // EINTR (a signal such as Ctrl-C) ends the sleep early; the caller re-checks its stop
        // flag and sleeps again.
        // SAFETY: valid timespec; a null remainder is allowed with TIMER_ABSTIME.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
    }
    while monotonic_ns() < target_ns {
        std::hint::spin_loop();
    }
}

/// Cores this process may run on (its affinity mask), ascending.
pub fn available_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            return (0..n).collect();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread to `cores` (empty: left alone).
pub fn pin_current_thread(cores: &[usize]) -> Result<(), String> {
    if cores.is_empty() {
        return Ok(());
    }
    // SAFETY: as above; cores were checked against CPU_SETSIZE by validation.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(())
}

static FIFO_WARNED: AtomicBool = AtomicBool::new(false);

/// Puts the calling thread under SCHED_FIFO at `priority` (clamped to the OS range). Where the
/// OS refuses (no CAP_SYS_NICE or RLIMIT_RTPRIO, as in containers), warns once per process and
/// returns false: the run goes on under the normal scheduler, with weaker timing.
pub fn set_fifo(priority: i32) -> bool {
    // SAFETY: plain syscalls on the calling thread.
    let ok = unsafe {
        let lo = libc::sched_get_priority_min(libc::SCHED_FIFO);
        let hi = libc::sched_get_priority_max(libc::SCHED_FIFO);
        let param = libc::sched_param { sched_priority: priority.clamp(lo, hi) };
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0
    };
    if !ok && !FIFO_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "SCHED_FIFO refused (needs CAP_SYS_NICE or an RLIMIT_RTPRIO, often missing in containers); \
             running under the normal scheduler: timing is best effort"
        );
    }
    ok
}

/// Keeps freed heap memory in the process (glibc's malloc): allocations below 32 MiB come from
/// the heap rather than fresh `mmap`s, and the heap is never trimmed. Memory the warm-up
/// touched is then reused by the run instead of being faulted in again: by default glibc maps a
/// large block (a 2 MB input tensor) afresh and returns it on free, and its first reuse from the
/// heap faults in every page (measured: 507 page faults, 1.2 ms, on the release thread at the
/// first release). Process-wide, and irreversible for the process. Other C libraries: nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tunables; 32 MiB is glibc's largest mmap threshold
    // on 64-bit, and -1 disables trimming.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

/// Timer slack (50 us by default) delays every timed wake-up of a normal thread; asks for 1 ns
/// for the calling thread.
pub fn set_timer_slack() {
    // SAFETY: prctl with an integer argument on the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// This process' resident set size in KiB (Linux `/proc/self/statm`), `None` where it cannot
/// be read.
pub fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()? / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read() {
        let kib = resident_kib().unwrap();
        assert!(kib > 100, "{kib} KiB");
    }

    #[test]
    fn sleeps_until_an_absolute_time_and_not_before() {
        let target = monotonic_ns() + 3_000_000;
        sleep_until(target);
        assert!(monotonic_ns() >= target);
    }

    #[test]
    fn the_process_has_cores_and_can_pin_to_one() {
        let cores = available_cores();
        assert!(!cores.is_empty());
        let c = cores[0];
        std::thread::spawn(move || pin_current_thread(&[c])).join().unwrap().unwrap();
    }
}
