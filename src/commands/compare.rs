//! `pushbench compare`: loads two results, judges each model's figures against run-to-run
//! noise, writes `compare.json` and the two latency spectra beside the new run, and prints the
//! verdict as text, markdown or JSON (and JUnit when asked).

use super::Outcome;
use crate::cli::CompareFormat;
use crate::report::{junit, load};

/// `pushbench compare`: 0 no regression, 1 regression, 2 unreadable input or bad option.
pub fn compare(
    baseline: &std::path::Path,
    new: &std::path::Path,
    tolerance: f64,
    format: CompareFormat,
    junit_path: Option<&std::path::Path>,
    out: Option<std::path::PathBuf>,
) -> Outcome {
    let (base, new_run) = match (load::load(baseline), load::load(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
    };
    let lines = crate::compare::compare(&base, &new_run, tolerance);
    if lines.is_empty() {
        eprintln!(
            "error: {} and {} have no model in common to compare",
            baseline.display(),
            new.display()
        );
        return Outcome::Usage;
    }
    let regressed = crate::compare::regressed(&lines);
    let json = serde_json::json!({
        "baseline": base.label,
        "new": new_run.label,
        "tolerance": tolerance,
        "method": crate::compare::method(tolerance),
        "regression": regressed,
        "metrics": lines,
    });
    let out = out.unwrap_or_else(|| new.to_path_buf());
    let mut written = std::fs::create_dir_all(&out)
        .and_then(|()| {
            std::fs::write(
                out.join("compare.json"),
                serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
            )
        })
        .map_err(|e| e.to_string());
    if written.is_ok() {
        // The two latency spectra in one picture, for the pull request.
        let mut runs = [base.clone(), new_run.clone()];
        runs[0].label = format!("baseline {}", runs[0].label);
        runs[1].label = format!("new {}", runs[1].label);
        written = crate::report::charts::render_one(
            crate::report::charts::Chart::Percentiles,
            &runs,
            &out,
            "compare_latency_percentiles",
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
    }
    match format {
        CompareFormat::Text => print!(
            "{}",
            crate::compare::render_text(&base, &new_run, &lines, tolerance)
        ),
        CompareFormat::Markdown => print!(
            "{}",
            crate::compare::render_markdown(&base, &new_run, &lines, tolerance)
        ),
        CompareFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
    }
    if let Some(path) = junit_path {
        let cases: Vec<junit::Case> = lines
            .iter()
            .map(|l| junit::Case {
                class: l.model.to_string(),
                name: l.metric.clone(),
                failure: (l.verdict == crate::compare::Verdict::Regression).then(|| {
                    format!(
                        "{} {} regressed {:+.1}% (baseline {:.1}, new {:.1} {})",
                        l.model,
                        l.metric,
                        l.change * 100.0,
                        l.baseline.value,
                        l.new.value,
                        l.unit
                    )
                }),
            })
            .collect();
        if let Err(e) = std::fs::write(path, junit::document("pushbench compare", &cases)) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
    if let Err(e) = written {
        eprintln!(
            "warning: cannot write compare.json and its chart into {}: {e}",
            out.display()
        );
    }
    // stdout stays valid markdown / JSON; the directory line goes where a human reads it.
    let last = format!("results: {}", out.display());
    if format == CompareFormat::Text {
        println!("{last}");
    } else {
        eprintln!("{last}");
    }
    if regressed {
        Outcome::CheckFailed
    } else {
        Outcome::Ok
    }
}
