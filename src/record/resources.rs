//! CPU and memory of processes, read from /proc: what each side of the comparison costs.

use std::fs;

/// One reading of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time so far, seconds.
    pub cpu_s: f64,
    /// Resident set size now, bytes.
    pub rss_bytes: u64,
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Reads `/proc/<pid>/stat` (use `"self"` for this process); `None` once the process is gone.
pub fn sample(pid: &str) -> Option<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ... utime(11) stime(12) ... rss pages(21).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(ProcSample {
        cpu_s: (utime + stime) / ticks_per_sec(),
        rss_bytes: rss_pages * page,
    })
}

/// CPU seconds the whole machine has spent busy (every process, interrupts included), from the
/// first line of `/proc/stat`; `None` where it cannot be read, or where it counts other CPUs
/// than this process may use (a container limited to some of a larger host's cores: the
/// host's other tenants would read as this machine being busy).
pub fn host_busy_cpu_s() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    if cpus != usable_cores() {
        return None;
    }
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?;
    Some(busy / ticks_per_sec())
}

/// Logical CPUs this process may use (affinity and cgroup quota included).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Mean busy cores of the whole machine between two moments.
#[derive(Debug, Clone, Copy)]
pub struct HostMeter {
    cpu_s: Option<f64>,
    at_ns: u64,
}

impl HostMeter {
    /// Starts measuring now.
    pub fn start() -> Self {
        Self {
            cpu_s: host_busy_cpu_s(),
            at_ns: crate::clock::mono_ns(),
        }
    }

    /// The cores the machine's busy time is measured against.
    pub fn cores(&self) -> f64 {
        usable_cores() as f64
    }

    /// Mean busy cores since [`start`](Self::start).
    pub fn busy_cores(&self) -> Option<f64> {
        let wall_s = crate::clock::mono_ns().saturating_sub(self.at_ns) as f64 / 1e9;
        Some((host_busy_cpu_s()? - self.cpu_s?) / wall_s.max(1e-3))
    }
}

/// Gives memory that is free but cached by the allocator back to the OS, so RSS shows what is
/// live (after tens of thousands of handshakes glibc otherwise keeps their scratch memory).
pub fn trim_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// Tracks one role (generator or target), summed over its processes, between samples.
#[derive(Debug, Clone, Default)]
pub struct RoleMeter {
    pids: Vec<String>,
    /// Threads inside those processes metered as a role of their own (the emulated link's
    /// pump), whose CPU is not this role's.
    minus: Vec<String>,
    first_cpu_s: Option<f64>,
    last_cpu_s: f64,
    last_at_s: f64,
    /// Highest summed RSS seen.
    pub peak_rss_bytes: u64,
}

impl RoleMeter {
    /// Meters these processes (`"self"` or pid numbers).
    pub fn new(pids: Vec<String>) -> Self {
        Self {
            pids,
            ..Self::default()
        }
    }

    /// Meters these process ids (none: a role that is not measured apart, e.g. in-process).
    pub fn of_pids(pids: &[u32]) -> Self {
        Self::new(pids.iter().map(u32::to_string).collect())
    }

    /// Leaves out the CPU of these (`"self/task/<tid>"`: a thread metered as its own role).
    pub fn without(mut self, minus: Vec<String>) -> Self {
        self.minus = minus;
        self
    }

    /// Adds processes started after the first sample (their CPU counts from their start).
    pub fn add_pids(&mut self, pids: impl IntoIterator<Item = String>) {
        self.pids.extend(pids);
    }

    /// Samples now; returns (CPU % since the last call, summed RSS).
    pub fn tick(&mut self, now_s: f64) -> (f64, u64) {
        let mut cpu = 0.0;
        let mut rss = 0;
        for pid in &self.pids {
            if let Some(s) = sample(pid) {
                cpu += s.cpu_s;
                rss += s.rss_bytes;
            }
        }
        for pid in &self.minus {
            if let Some(s) = sample(pid) {
                cpu -= s.cpu_s;
            }
        }
        let pct = match self.first_cpu_s {
            None => {
                self.first_cpu_s = Some(cpu);
                0.0
            }
            Some(_) if now_s > self.last_at_s => {
                (cpu - self.last_cpu_s).max(0.0) / (now_s - self.last_at_s) * 100.0
            }
            Some(_) => 0.0,
        };
        self.last_cpu_s = cpu;
        self.last_at_s = now_s;
        self.peak_rss_bytes = self.peak_rss_bytes.max(rss);
        (pct, rss)
    }

    /// CPU seconds used since the first sample.
    pub fn cpu_s(&self) -> f64 {
        self.last_cpu_s - self.first_cpu_s.unwrap_or(self.last_cpu_s)
    }

    /// What this role cost over the run, as the summary reports it.
    pub fn cost(&self) -> crate::record::results::RoleCost {
        crate::record::results::RoleCost {
            cpu_s: self.cpu_s(),
            peak_rss_bytes: self.peak_rss_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_sees_cpu_spent() {
        let s = sample("self").unwrap();
        assert!(s.rss_bytes > 1 << 20, "rss {}", s.rss_bytes);
        let mut meter = RoleMeter::new(vec!["self".into()]);
        meter.tick(0.0);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let (pct, rss) = meter.tick(0.3);
        assert!(pct > 30.0, "busy loop shows as CPU ({pct}%)");
        assert!(meter.cpu_s() > 0.1 && rss > 0 && meter.peak_rss_bytes >= rss);
        assert!(sample("999999999").is_none());
    }

    #[test]
    fn the_machine_meter_sees_a_busy_core() {
        let meter = HostMeter::start();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        // Unknown where /proc/stat counts other CPUs than this process may use.
        if let Some(busy) = meter.busy_cores() {
            assert!(busy > 0.5, "one core spinning reads as {busy} busy cores");
        }
    }
}
