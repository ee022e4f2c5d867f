//! Arbitrary bytes into the scenario loader, the entry point `pushbench validate` and `run` use:
//! every input must come back as a scenario or as problems, never a panic, a hang or a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `env:` secrets resolve for one name, so both the found and the missing paths run.
    let env = |name: &str| {
        (name == "FUZZ_SECRET").then(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string())
    };
    match pushbench::scenario::from_bytes(data, "fuzz.toml", "fuzz", &env) {
        // What `validate` prints either way.
        Ok(s) => drop(format!("ok (scenario \"{}\") {s:?}", s.name)),
        Err(e) => drop(e.to_string()),
    }
});
