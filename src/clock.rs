//! Clocks and a precise timer.
//!
//! Every timestamp in the harness is nanoseconds on `CLOCK_MONOTONIC`, read through the vDSO
//! (tens of nanoseconds, no allocation). Wall-clock time is only used where it crosses a process
//! or machine boundary (the `x-pushbench-intended` header the built-in receiver reads), and is
//! derived from one monotonic/realtime pair taken at start so both views agree.
//!
//! tokio's timer wheel has 1 ms granularity, too coarse for an open-loop pacer that must send
//! within microseconds of each intended time. [`PreciseTimer`] arms a `timerfd` with an absolute
//! deadline and waits for it through tokio's reactor: no spinning, no extra thread, and the kernel
//! applies no timer slack to timerfds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds on `CLOCK_MONOTONIC` (shared by every process on the host).
#[inline]
pub fn mono_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
#[inline]
pub fn real_ns() -> u64 {
    read_clock(libc::CLOCK_REALTIME)
}

/// Maps monotonic instants to wall-clock time using one pair of readings taken together.
/// `CLOCK_MONOTONIC` is shared by every process on a host, so worker processes reuse the
/// parent's map and all agree on wall-clock times.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct WallMap {
    mono_at_start: u64,
    real_at_start: u64,
}

impl WallMap {
    /// Takes the reference pair now.
    pub fn now() -> Self {
        let mono_at_start = mono_ns();
        let real_at_start = real_ns();
        Self {
            mono_at_start,
            real_at_start,
        }
    }

    /// The monotonic instant of a wall-clock time (the inverse of [`to_real_ns`](Self::to_real_ns)).
    #[inline]
    pub fn to_mono_ns(&self, real: u64) -> u64 {
        (self.mono_at_start + real).saturating_sub(self.real_at_start)
    }

    /// Wall-clock nanoseconds for a monotonic instant.
    #[inline]
    pub fn to_real_ns(&self, mono: u64) -> u64 {
        (self.real_at_start + mono).saturating_sub(self.mono_at_start)
    }
}

/// A pacer's shortest sleep. Events closer together than this are sent together, at most this
/// late (wrk2's timer has 1 ms granularity); each wake costs a few system calls, so this bounds
/// a pacer to 50,000 wakes a second however high the offered rate, and a pacer that is behind
/// still gives its thread back between wakes.
pub const MIN_WAKE_GAP_NS: u64 = 20_000;

/// An absolute-deadline timer on `CLOCK_MONOTONIC` with microsecond precision.
pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    /// Creates the timerfd; must be called inside a tokio runtime.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is checked and then owned.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `OwnedFd` keeps the descriptor open and unchanged for the AsyncFd's lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    fn arm(fd: RawFd, deadline_mono_ns: u64) -> io::Result<()> {
        // A zero it_value disarms a timerfd, so never pass 0.
        let deadline = deadline_mono_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and itimerspec; old value not requested.
        let rc = unsafe {
            libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until `deadline_mono_ns` (returns at once if it has passed).
    pub async fn sleep_until(&mut self, deadline_mono_ns: u64) -> io::Result<()> {
        if mono_ns() >= deadline_mono_ns {
            return Ok(());
        }
        Self::arm(self.fd.get_ref().as_raw_fd(), deadline_mono_ns)?;
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from our own descriptor.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    8,
                )
            };
            if n == 8 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_map_tracks_the_monotonic_offset() {
        let map = WallMap::now();
        assert_eq!(
            map.to_mono_ns(map.to_real_ns(12_345_678_901)),
            12_345_678_901
        );
        let later = map.to_real_ns(mono_ns() + 1_000_000_000);
        let diff = later as i128 - real_ns() as i128;
        assert!((diff - 1_000_000_000).abs() < 50_000_000, "diff {diff}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn precise_timer_wakes_at_the_deadline_not_before() {
        let mut timer = PreciseTimer::new().unwrap();
        for _ in 0..20 {
            let deadline = mono_ns() + 2_000_000;
            timer.sleep_until(deadline).await.unwrap();
            assert!(mono_ns() >= deadline);
        }
        // A deadline in the past returns at once.
        timer.sleep_until(1).await.unwrap();
    }
}
