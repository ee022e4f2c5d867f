//! Running one scenario as several shards, each placed by an existing engine (a Kubernetes
//! Indexed Job, Slurm), and what a shard records so `merge` can put them back together:
//! `--shard I/N` (or `auto`, read from the engine's environment) and `--start-at`.

use crate::schedule::Shard;

/// What a shard's `summary.json` says about it (`shard`); a merged run lists every shard's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ShardInfo {
    /// This shard, from 0.
    pub index: u64,
    /// Shards in the run.
    pub count: u64,
    /// The agreed start (`--start-at`), unix seconds, when one was given.
    pub start_at: Option<f64>,
    /// When this shard's first model really started, unix seconds (its wall clock).
    pub started_s: f64,
    /// The same, RFC 3339 UTC.
    pub started_at: String,
    /// The machine.
    pub host: String,
    /// Events offered by this shard (all models).
    pub events: u64,
}

/// Parses `--shard`: `I/N` (0-based index of N), or `auto`: `JOB_COMPLETION_INDEX` with
/// `PUSHBENCH_SHARDS` (a Kubernetes Indexed Job) or `SLURM_PROCID` with `SLURM_NTASKS` (Slurm).
pub fn parse_shard(arg: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let (index, count, from) = if arg == "auto" {
        let pair = |i: &str, n: &str| Some((env(i)?, env(n)?));
        match pair("JOB_COMPLETION_INDEX", "PUSHBENCH_SHARDS")
            .map(|p| (p, "JOB_COMPLETION_INDEX and PUSHBENCH_SHARDS"))
            .or_else(|| {
                pair("SLURM_PROCID", "SLURM_NTASKS").map(|p| (p, "SLURM_PROCID and SLURM_NTASKS"))
            }) {
            Some(((i, n), from)) => (i, n, from),
            None => {
                return Err("--shard auto: neither JOB_COMPLETION_INDEX with PUSHBENCH_SHARDS (a Kubernetes Indexed Job) nor SLURM_PROCID with SLURM_NTASKS (Slurm) is set; give --shard I/N".into())
            }
        }
    } else {
        match arg.split_once('/') {
            Some((i, n)) => (i.to_string(), n.to_string(), "--shard"),
            None => {
                return Err(format!(
                    "--shard {arg}: write I/N (0-based: 0/3, 1/3, 2/3) or auto"
                ))
            }
        }
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (number(&index), number(&count)) {
        (Some(index), Some(count)) if count >= 1 && index < count => Ok(Shard { index, count }),
        _ => Err(format!(
            "shard {index}/{count} (from {from}): the index must be a number below the count (0-based)"
        )),
    }
}

/// Parses `--start-at` (or `PUSHBENCH_START_AT`): unix seconds, fractions allowed.
pub fn parse_start_at(arg: &str) -> Result<f64, String> {
    match arg.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 1e9 => Ok(s),
        _ => Err(format!(
            "--start-at {arg}: unix seconds (e.g. $(( $(date +%s) + 30 ))), when every shard starts"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_come_from_the_flag_or_the_engine() {
        let none = |_: &str| None;
        assert_eq!(parse_shard("1/3", &none), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "x/3", "1", "1/0"] {
            assert!(parse_shard(bad, &none).is_err(), "{bad}");
        }
        let k8s = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("2".to_string()),
            "PUSHBENCH_SHARDS" => Some("4".to_string()),
            "SLURM_PROCID" => Some("0".to_string()),
            _ => None,
        };
        assert_eq!(parse_shard("auto", &k8s), Ok(Shard { index: 2, count: 4 }));
        let slurm = |k: &str| match k {
            "SLURM_PROCID" => Some("5".to_string()),
            "SLURM_NTASKS" => Some("8".to_string()),
            _ => None,
        };
        assert_eq!(
            parse_shard("auto", &slurm),
            Ok(Shard { index: 5, count: 8 })
        );
        let err = parse_shard("auto", &none).unwrap_err();
        assert!(
            err.contains("JOB_COMPLETION_INDEX") && err.contains("SLURM_PROCID"),
            "{err}"
        );
        let broken =
            |k: &str| (k == "SLURM_PROCID" || k == "SLURM_NTASKS").then(|| "9".to_string());
        assert!(parse_shard("auto", &broken)
            .unwrap_err()
            .contains("SLURM_PROCID and SLURM_NTASKS"));
        assert_eq!(parse_start_at("1795000000.5"), Ok(1_795_000_000.5));
        assert!(parse_start_at("soon").is_err());
    }

    #[test]
    fn every_delivery_is_in_exactly_one_shard() {
        use crate::schedule::{Schedule, Shape};
        let whole = Schedule {
            shape: Shape::Constant {
                rate_per_sec: 500.0,
            },
            total_ns: 2_000_000_000,
            seed: 7,
            fanout: 3,
            subscribers: 10,
            shard: Shard::default(),
        };
        let all: Vec<u64> = whole.deliveries(0, 1).map(|d| d.index).collect();
        let mut union: Vec<u64> = (0..3)
            .flat_map(|index| {
                let part = Schedule {
                    shard: Shard { index, count: 3 },
                    ..whole.clone()
                };
                let mine: Vec<_> = part.deliveries(0, 1).collect();
                assert!(mine.iter().all(|d| d.subscriber % 3 == index));
                mine.into_iter().map(|d| d.index).collect::<Vec<_>>()
            })
            .collect();
        union.sort_unstable();
        assert_eq!(union, all);
        assert_eq!(Shard { index: 2, count: 3 }.subscribers_of(10), 3);
        assert_eq!(Shard { index: 0, count: 3 }.subscribers_of(10), 4);
    }
}
