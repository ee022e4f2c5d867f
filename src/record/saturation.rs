//! Who saturated: did the generator send what the schedule offered, and if not, was the
//! generator itself the limit or the target? Pure: every model hands in its figures, and the
//! verdict (with a sentence for the user) goes into its summary entry, the terminal table, the
//! report's verdict and the capacity search's bottleneck call.

use serde::{Deserialize, Serialize};

use crate::model_kind::ModelKind;
use crate::units::{fmt_us, si};

/// The generator's own CPU counts as saturated from this share of the cores it can use.
pub const CPU_SATURATED: f64 = 0.85;
/// The machine counts as out of CPU from this share of its cores busy; the generator is then
/// the limit if it used more of them than the target (when the target is measured) and at
/// least half this share, or at least this share of all of them (when it is not).
const HOST_SATURATED: f64 = 0.85;
const HOST_SHARE: f64 = 0.5;
/// Sends below this share of the offered rate did not keep up.
const KEPT_UP: f64 = 0.95;
/// A first attempt this late at the 99th percentile did not keep up (wrk2's timer alone is
/// 1 ms coarse; 10 ms is far beyond pacing noise).
const LAG_BEHIND_US: u64 = 10_000;
/// The publisher waiting on the server this share of the time is the server's pace.
const PUSHBACK: f64 = 0.5;
/// The webhook pool counts as full from this occupancy (rate x answer time / pool).
pub const POOL_FULL: f64 = 0.8;

/// The summary's `saturation` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saturation {
    /// True when the generator, not the target, limited what was sent: the figures then
    /// describe the generator.
    pub generator: bool,
    /// True when the offered schedule was not kept (sends fell short, started late or were
    /// dropped), whoever was the limit; always false in a closed loop.
    pub behind: bool,
    /// True when the emulated network (`[network]`), not the target, was the limit: its
    /// bottleneck full, or the link itself behind its schedule.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
    /// What the schedule offered (deliveries per second; closed loop: what was sent).
    pub offered_per_s: f64,
    /// First attempts (pushes, sends) started per second in the measured window.
    pub sent_per_s: f64,
    /// Why, in words.
    pub reason: String,
}

impl Saturation {
    /// One line for the table and the report when the run did not keep its schedule (or, in a
    /// closed loop, the generator set the pace): who was the limit and why. `None` when the
    /// schedule was kept.
    pub fn headline(&self, model: ModelKind) -> Option<String> {
        if self.generator {
            return Some(format!(
                "{model}: the generator could send {} of {}/s offered ({}): these figures \
                 describe the generator, not the target",
                si(self.sent_per_s),
                si(self.offered_per_s),
                self.reason
            ));
        }
        if self.link {
            return Some(format!(
                "{model}: {} of {}/s offered were sent; {}",
                si(self.sent_per_s),
                si(self.offered_per_s),
                self.reason
            ));
        }
        self.behind.then(|| {
            format!(
                "{model}: {} of {}/s offered were sent; the target was the limit: {}",
                si(self.sent_per_s),
                si(self.offered_per_s),
                self.reason
            )
        })
    }
}

/// A connection pool and how busy the target kept it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    /// Connections.
    pub size: u64,
    /// Attempts per second x mean answer time / size: 1.0 = every connection busy all along.
    pub occupancy: f64,
    /// Median answer time (send -> response), us.
    pub answer_p50_us: u64,
}

/// What a model measured that tells who was busy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SendFigures {
    /// Offered deliveries per second; `None` for a closed loop (`shape = "max"`).
    pub offered_per_s: Option<f64>,
    /// First attempts started per second.
    pub sent_per_s: f64,
    /// Deliveries never started: backlog full, or waited past `max_wait` (webhook); events the
    /// controller never got to publish (WebSocket).
    pub dropped: u64,
    /// Intended time -> first attempt, 99th percentile, us.
    pub lag_p99_us: u64,
    /// Mean generator CPU over the run, in cores.
    pub gen_cpu_cores: f64,
    /// Cores the generator can use (its threads and processes, at most the host's).
    pub gen_cores_usable: f64,
    /// Mean CPU busy on the whole machine, in cores (every process), when known.
    pub host_busy_cores: Option<f64>,
    /// Mean target CPU in cores, when the target runs here and is measured (built-in).
    pub target_cpu_cores: Option<f64>,
    /// Logical CPUs of the machine.
    pub host_cores: f64,
    /// Webhook: the connection pool.
    pub pool: Option<Pool>,
    /// WebSocket push: share of the run the publisher waited for the server to take its
    /// stream (the target pushing back).
    pub target_pushback: Option<f64>,
}

/// The verdict for one model's run.
pub fn judge(f: &SendFigures) -> Saturation {
    let offered = f.offered_per_s.unwrap_or(f.sent_per_s);
    let verdict = |generator: bool, behind: bool, reason: String| Saturation {
        generator,
        behind,
        link: false,
        offered_per_s: offered,
        sent_per_s: f.sent_per_s,
        reason,
    };
    let lag = fmt_us(f.lag_p99_us);
    let usable = f.gen_cores_usable.min(f.host_cores).max(1.0);
    let cpu_full = f.gen_cpu_cores >= CPU_SATURATED * usable;
    let host_busy = f
        .host_busy_cores
        .is_some_and(|busy| busy >= HOST_SATURATED * f.host_cores);
    // Another program busy on the same machine is neither side's limit: the generator must
    // have used a real share of it.
    let host_full = host_busy
        && match f.target_cpu_cores {
            Some(target) => {
                f.gen_cpu_cores >= target && f.gen_cpu_cores >= HOST_SHARE / 2.0 * f.host_cores
            }
            None => f.gen_cpu_cores >= HOST_SHARE * f.host_cores,
        };
    // The machine was out of CPU and the target, measured beside the generator, used most.
    let target_took_host = host_busy && !host_full && f.target_cpu_cores.is_some();
    let cpu_words = if cpu_full {
        format!(
            "generator CPU {:.2} of {usable:.0} usable core{}",
            f.gen_cpu_cores,
            if usable == 1.0 { "" } else { "s" }
        )
    } else {
        format!(
            "this machine's CPU was saturated ({:.2} of {:.0} cores busy, the generator {:.2})",
            f.host_busy_cores.unwrap_or(0.0),
            f.host_cores,
            f.gen_cpu_cores
        )
    };
    let pool_words = f.pool.map(|p| {
        format!(
            "all {} connections busy (answers took {} at p50)",
            p.size,
            fmt_us(p.answer_p50_us)
        )
    });
    let pool_full = f.pool.is_some_and(|p| p.occupancy >= POOL_FULL);

    let Some(offered_per_s) = f.offered_per_s else {
        // Closed loop: nothing is late by definition; who set the pace?
        return if cpu_full || host_full {
            verdict(true, false, cpu_words)
        } else {
            verdict(
                false,
                false,
                pool_words.map_or("the target set the pace".into(), |w| {
                    format!("{w}: the target set the pace")
                }),
            )
        };
    };
    let mut symptoms = Vec::new();
    if f.dropped > 0 {
        symptoms.push(format!(
            "{} deliveries never started (backlog full or waited too long)",
            si(f.dropped as f64)
        ));
    }
    if f.lag_p99_us > LAG_BEHIND_US {
        symptoms.push(format!(
            "first attempts started late: p99 schedule lag {lag}"
        ));
    }
    if f.sent_per_s < KEPT_UP * offered_per_s && symptoms.is_empty() {
        symptoms.push(format!(
            "sent {} of {}/s",
            si(f.sent_per_s),
            si(offered_per_s)
        ));
    }
    if symptoms.is_empty() {
        return verdict(
            false,
            false,
            format!(
                "kept up: sent {} of {}/s offered, p99 schedule lag {lag}",
                si(f.sent_per_s),
                si(offered_per_s)
            ),
        );
    }
    let symptoms = symptoms.join("; ");
    if cpu_full || host_full {
        return verdict(true, true, format!("{cpu_words}; {symptoms}"));
    }
    if let Some(share) = f.target_pushback.filter(|s| *s >= PUSHBACK) {
        if !cpu_full {
            return verdict(
                false,
                true,
                format!(
                    "the server did not take the event stream as fast as offered (publishing \
                     waited on it {:.0}% of the time); {symptoms}",
                    share * 100.0
                ),
            );
        }
    }
    if target_took_host {
        return verdict(
            false,
            true,
            format!(
                "this machine's CPU was saturated ({:.2} of {:.0} cores busy) and the target used \
                 most of it ({:.2} cores, the generator {:.2}); {symptoms}",
                f.host_busy_cores.unwrap_or(0.0),
                f.host_cores,
                f.target_cpu_cores.unwrap_or(0.0),
                f.gen_cpu_cores
            ),
        );
    }
    if pool_full {
        let shared = if host_busy {
            format!(
                "; this machine's CPU was saturated too ({:.2} of {:.0} cores busy, the \
                 generator {:.2}): a target on cores of its own may answer faster",
                f.host_busy_cores.unwrap_or(0.0),
                f.host_cores,
                f.gen_cpu_cores
            )
        } else {
            String::new()
        };
        return verdict(
            false,
            true,
            format!(
                "{}: the target's answers set the pace at this pool size; {symptoms}{shared}",
                pool_words.unwrap_or_default()
            ),
        );
    }
    verdict(
        true,
        true,
        format!(
            "{symptoms}: the generator did not keep its schedule, though neither its CPU nor \
             the machine's was saturated"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept_up() -> SendFigures {
        SendFigures {
            offered_per_s: Some(20_000.0),
            sent_per_s: 19_990.0,
            dropped: 0,
            lag_p99_us: 300,
            gen_cpu_cores: 0.4,
            gen_cores_usable: 2.0,
            host_busy_cores: Some(0.9),
            target_cpu_cores: None,
            host_cores: 2.0,
            pool: Some(Pool {
                size: 64,
                occupancy: 0.1,
                answer_p50_us: 300,
            }),
            target_pushback: None,
        }
    }

    #[test]
    fn a_run_that_kept_its_schedule_blames_nobody() {
        let s = judge(&kept_up());
        assert!(!s.generator);
        assert!(s.reason.starts_with("kept up"), "{}", s.reason);
        assert_eq!(s.offered_per_s, 20_000.0);
        assert!(s.headline(ModelKind::Webhook).is_none());
    }

    #[test]
    fn a_generator_out_of_cpu_that_dropped_deliveries_is_named() {
        let f = SendFigures {
            offered_per_s: Some(400_000.0),
            sent_per_s: 27_000.0,
            dropped: 1_200_000,
            lag_p99_us: 1_000_000,
            gen_cpu_cores: 1.9,
            ..kept_up()
        };
        let s = judge(&f);
        assert!(s.generator);
        assert!(s.reason.contains("generator CPU 1.90 of 2"), "{}", s.reason);
        assert!(
            s.reason.contains("1.2M deliveries never started"),
            "{}",
            s.reason
        );
        let line = s.headline(ModelKind::Webhook).unwrap();
        assert!(line.contains("could send 27k of 400k/s offered"), "{line}");
        assert!(
            line.contains("describe the generator, not the target"),
            "{line}"
        );
    }

    #[test]
    fn a_machine_out_of_cpu_counts_when_the_generator_used_most_of_it() {
        // The generator's threads are not all busy, but with the target on the same two
        // cores the machine is: the generator could not have sent more.
        let f = SendFigures {
            offered_per_s: Some(400_000.0),
            sent_per_s: 60_000.0,
            dropped: 900_000,
            gen_cpu_cores: 1.3,
            host_busy_cores: Some(1.95),
            ..kept_up()
        };
        let s = judge(&f);
        assert!(s.generator, "{}", s.reason);
        assert!(
            s.reason.contains("machine's CPU was saturated"),
            "{}",
            s.reason
        );
        // The same with an idle machine and a slow target filling the pool: the target.
        let slow_target = SendFigures {
            host_busy_cores: Some(0.5),
            gen_cpu_cores: 0.2,
            pool: Some(Pool {
                size: 2,
                occupancy: 0.99,
                answer_p50_us: 5_000,
            }),
            ..f
        };
        let s = judge(&slow_target);
        assert!(!s.generator, "{}", s.reason);
        assert!(s.reason.contains("all 2 connections busy"), "{}", s.reason);
        assert!(s.reason.contains("never started"), "{}", s.reason);
    }

    #[test]
    fn a_machine_out_of_cpu_is_the_targets_when_the_measured_target_used_most() {
        let f = SendFigures {
            offered_per_s: Some(600_000.0),
            sent_per_s: 110_000.0,
            dropped: 2_000_000,
            gen_cpu_cores: 0.8,
            target_cpu_cores: Some(1.1),
            host_busy_cores: Some(1.95),
            pool: None,
            ..kept_up()
        };
        let s = judge(&f);
        assert!(!s.generator && s.behind, "{s:?}");
        assert!(
            s.reason.contains("the target used most of it"),
            "{}",
            s.reason
        );
        // A machine kept busy by some other program is not the generator's doing.
        let s = judge(&SendFigures {
            gen_cpu_cores: 0.1,
            target_cpu_cores: Some(0.05),
            pool: Some(Pool {
                size: 2,
                occupancy: 0.99,
                answer_p50_us: 5_000,
            }),
            ..f
        });
        assert!(!s.generator, "{s:?}");
        // The same split the other way round is the generator.
        let s = judge(&SendFigures {
            gen_cpu_cores: 1.1,
            target_cpu_cores: Some(0.8),
            ..f
        });
        assert!(s.generator, "{s:?}");
    }

    #[test]
    fn a_server_that_pushes_back_on_the_stream_is_the_limit() {
        let f = SendFigures {
            offered_per_s: Some(600_000.0),
            sent_per_s: 120_000.0,
            dropped: 2_400_000,
            lag_p99_us: 990_000,
            pool: None,
            target_pushback: Some(0.8),
            ..kept_up()
        };
        let s = judge(&f);
        assert!(!s.generator && s.behind, "{s:?}");
        assert!(s.reason.contains("waited on it 80%"), "{}", s.reason);
    }

    #[test]
    fn late_sends_with_cpu_to_spare_are_still_the_generator() {
        let f = SendFigures {
            lag_p99_us: 1_900_000,
            ..kept_up()
        };
        let s = judge(&f);
        assert!(s.generator);
        assert!(s.reason.contains("p99 schedule lag 1.90s"), "{}", s.reason);
    }

    #[test]
    fn closed_loop_asks_who_set_the_pace() {
        let busy = SendFigures {
            offered_per_s: None,
            sent_per_s: 80_000.0,
            gen_cpu_cores: 1.8,
            ..kept_up()
        };
        let s = judge(&busy);
        assert!(s.generator);
        assert_eq!(
            s.offered_per_s, 80_000.0,
            "closed loop offers what it sends"
        );
        let idle = SendFigures {
            gen_cpu_cores: 0.3,
            ..busy
        };
        assert!(!judge(&idle).generator);
    }
}
