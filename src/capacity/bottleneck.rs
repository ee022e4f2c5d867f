//! Who broke the objective at the first failing load: the target, or the load generator itself?
//! A capacity figure is only about the target when the generator kept its schedule, so this is
//! checked on the figures of the failing step, with the lowest step as the baseline. Pure.

use serde::{Deserialize, Serialize};

// The same bounds as a run's own verdict, so a step and its run never disagree on them.
pub use crate::record::saturation::{CPU_SATURATED, POOL_FULL};

/// Sends late by more than 1 ms count as "rising" from this share of all sends...
pub const LATE_SHARE: f64 = 0.05;
/// ...and at this many times the baseline step's share.
pub const LATE_RISE: f64 = 5.0;

/// What limited the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bottleneck {
    /// No step failed: the search ran out of steps, time or scenario range first.
    None,
    /// The system under test (its answers, failures or CPU).
    Target,
    /// The harness could not offer more load: its CPU, or its sends fell behind the schedule.
    Generator,
}

impl Bottleneck {
    /// As written in `capacity.json`.
    pub fn name(self) -> &'static str {
        match self {
            Bottleneck::None => "none",
            Bottleneck::Target => "target",
            Bottleneck::Generator => "generator",
        }
    }
}

/// The figures of one step that tell who was busy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepLoad {
    /// Mean generator CPU over the step, in cores (1.0 = one core busy).
    pub gen_cpu_cores: f64,
    /// Cores the generator can use (its delivery threads or fleet workers, at most the host's).
    pub gen_cores_usable: f64,
    /// Mean target CPU in cores, when the target is measured apart (built-in, child process).
    pub target_cpu_cores: Option<f64>,
    /// Logical CPUs of the host.
    pub host_cores: f64,
    /// Share of sends that started more than 1 ms after their intended time.
    pub late_share: f64,
    /// Intended time -> first attempt, 99th percentile.
    pub lag_p99_us: f64,
    /// Webhook only: achieved rate x mean answer time / pool size; 1.0 means every pooled
    /// connection was busy all the time (sends then wait for the target, not the generator).
    pub pool_occupancy: Option<f64>,
    /// The run's own verdict (its summary's `saturation`) when it found the generator to be the
    /// limit: the step then says nothing about the target.
    #[serde(default)]
    pub generator_saturated: Option<String>,
}

/// The verdict and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Who.
    pub bottleneck: Bottleneck,
    /// Why, in plain words.
    pub message: String,
}

/// Classifies the first failing step (`None`: nothing failed) against the baseline (lowest) step.
pub fn classify(failing: Option<&StepLoad>, baseline: Option<&StepLoad>) -> Diagnosis {
    let Some(f) = failing else {
        return Diagnosis {
            bottleneck: Bottleneck::None,
            message: "every step held the objective; the search stopped before finding a limit"
                .into(),
        };
    };
    let generator = |message: String| Diagnosis {
        bottleneck: Bottleneck::Generator,
        message: format!(
            "{message}: the generator, not the target, was the limit, so the figure is a lower \
             bound for the target (give the generator more cores, or run it on another machine)"
        ),
    };
    if let Some(reason) = &f.generator_saturated {
        return generator(format!(
            "the run could not send what this step offered ({reason})"
        ));
    }
    let usable = f.gen_cores_usable.max(1.0).min(f.host_cores.max(1.0));
    if f.gen_cpu_cores >= CPU_SATURATED * usable {
        return generator(format!(
            "the generator's own CPU was saturated ({:.2} of {usable:.0} usable core{})",
            f.gen_cpu_cores,
            if usable == 1.0 { "" } else { "s" }
        ));
    }
    let target_cpu = f.target_cpu_cores.unwrap_or(0.0);
    if f.gen_cpu_cores + target_cpu >= 0.9 * f.host_cores && f.gen_cpu_cores > target_cpu {
        return generator(format!(
            "this machine's {} cores were saturated and the generator used most of them ({:.2} cores, target {:.2})",
            f.host_cores, f.gen_cpu_cores, target_cpu
        ));
    }
    let target_saturated = target_cpu >= CPU_SATURATED * f.host_cores;
    let pool_full = f.pool_occupancy.is_some_and(|o| o >= POOL_FULL);
    let base_late = baseline.map_or(0.0, |b| b.late_share);
    let late_rising = f.late_share >= LATE_SHARE && f.late_share >= LATE_RISE * base_late;
    if late_rising && !target_saturated && !pool_full {
        return generator(format!(
            "{:.1}% of sends started late (schedule lag p99 {}) while the target's CPU was not \
             saturated{}",
            f.late_share * 100.0,
            crate::report::table::fmt_us(f.lag_p99_us as u64),
            if f.pool_occupancy.is_some() {
                " and the connection pool was not full"
            } else {
                ""
            }
        ));
    }
    let message = if pool_full {
        format!(
            "the target's answers kept the connection pool busy ({:.0}% occupied: rate x answer \
             time fills the pool), so deliveries queued; the target answers too slowly for more \
             at this pool size",
            f.pool_occupancy.unwrap_or(0.0) * 100.0
        )
    } else if target_saturated {
        format!("the target's CPU was saturated ({target_cpu:.2} cores)")
    } else {
        "the target's latency or failures broke the objective while the generator kept its \
         schedule"
            .into()
    };
    Diagnosis {
        bottleneck: Bottleneck::Target,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> StepLoad {
        StepLoad {
            gen_cpu_cores: 0.2,
            gen_cores_usable: 1.0,
            target_cpu_cores: Some(0.1),
            host_cores: 2.0,
            late_share: 0.0,
            lag_p99_us: 200.0,
            pool_occupancy: Some(0.3),
            generator_saturated: None,
        }
    }

    #[test]
    fn nothing_failed_means_no_bottleneck() {
        assert_eq!(classify(None, Some(&step())).bottleneck, Bottleneck::None);
    }

    #[test]
    fn a_full_pool_is_the_target_even_with_late_sends() {
        // pool 8, 10 ms answers: sends wait for a free connection, so they are late, but the
        // generator is idle.
        let f = StepLoad {
            late_share: 0.9,
            lag_p99_us: 400_000.0,
            pool_occupancy: Some(1.0),
            ..step()
        };
        let d = classify(Some(&f), Some(&step()));
        assert_eq!(d.bottleneck, Bottleneck::Target, "{}", d.message);
        assert!(d.message.contains("pool"), "{}", d.message);
    }

    #[test]
    fn a_saturated_generator_cpu_is_the_generator() {
        let f = StepLoad {
            gen_cpu_cores: 0.95,
            ..step()
        };
        let d = classify(Some(&f), Some(&step()));
        assert_eq!(d.bottleneck, Bottleneck::Generator);
        assert!(d.message.contains("CPU was saturated"), "{}", d.message);
        assert!(d.message.contains("not the target"), "{}", d.message);
        // Two usable cores: one busy core is not saturation.
        let f = StepLoad {
            gen_cpu_cores: 0.95,
            gen_cores_usable: 2.0,
            host_cores: 4.0,
            ..step()
        };
        assert_eq!(classify(Some(&f), None).bottleneck, Bottleneck::Target);
    }

    #[test]
    fn late_sends_rising_with_an_idle_target_is_the_generator() {
        let f = StepLoad {
            late_share: 0.3,
            lag_p99_us: 20_000.0,
            ..step()
        };
        let d = classify(Some(&f), Some(&step()));
        assert_eq!(d.bottleneck, Bottleneck::Generator, "{}", d.message);
        assert!(
            d.message.contains("30.0% of sends started late"),
            "{}",
            d.message
        );
        // The same lateness at the baseline already is not "rising".
        let base = StepLoad {
            late_share: 0.2,
            ..step()
        };
        assert_eq!(
            classify(Some(&f), Some(&base)).bottleneck,
            Bottleneck::Target
        );
        // A saturated target explains late sends.
        let busy = StepLoad {
            target_cpu_cores: Some(1.9),
            gen_cpu_cores: 0.05,
            ..f
        };
        assert_eq!(
            classify(Some(&busy), Some(&step())).bottleneck,
            Bottleneck::Target
        );
    }

    #[test]
    fn a_saturated_machine_is_blamed_on_its_biggest_user() {
        let f = StepLoad {
            gen_cpu_cores: 1.0,
            gen_cores_usable: 2.0,
            target_cpu_cores: Some(0.9),
            ..step()
        };
        assert_eq!(classify(Some(&f), None).bottleneck, Bottleneck::Generator);
        let f = StepLoad {
            gen_cpu_cores: 0.5,
            gen_cores_usable: 2.0,
            target_cpu_cores: Some(1.8),
            ..step()
        };
        let d = classify(Some(&f), None);
        assert_eq!(d.bottleneck, Bottleneck::Target);
        assert!(d.message.contains("CPU was saturated"), "{}", d.message);
    }

    #[test]
    fn a_run_that_says_its_generator_saturated_is_never_the_targets_limit() {
        // Idle CPU and a full pool would read as the target; the run itself knew better.
        let f = StepLoad {
            pool_occupancy: Some(0.99),
            generator_saturated: Some("generator CPU 1.90 of 2 usable cores".into()),
            ..step()
        };
        let d = classify(Some(&f), Some(&step()));
        assert_eq!(d.bottleneck, Bottleneck::Generator);
        assert!(d.message.contains("generator CPU 1.90"), "{}", d.message);
    }
}
