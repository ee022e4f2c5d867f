//! The deployment files the shards depend on: the Kubernetes Indexed Job (index, count and
//! start instant in the environment `--shard auto` reads, the scenario from its ConfigMap, the
//! results on the shared volume the merge Job reads) and the Slurm batch script.

use std::path::Path;

use serde_yaml::Value;

fn manifest(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(name);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_indexed_job_gives_every_shard_what_it_reads() {
    let job = manifest("shards-job.yaml");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(
        spec["parallelism"].as_u64(),
        Some(n),
        "every shard runs at once"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["restartPolicy"], "Never",
        "a shard that fails is not run twice"
    );
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"].as_sequence().unwrap().iter().map(text).collect();
    assert_eq!(args[0], "run");
    let shard = args.iter().position(|a| *a == "--shard").unwrap();
    assert_eq!(args[shard + 1], "auto");
    let env = env_of(c);
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("{name} in the shards' environment"))
            .1
            .clone()
    };
    // `--shard auto` reads JOB_COMPLETION_INDEX with PUSHBENCH_SHARDS; the count must be the
    // Job's.
    assert_eq!(text(&get("PUSHBENCH_SHARDS")["value"]), n.to_string());
    assert_eq!(
        text(&get("JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"]["fieldPath"]),
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    // One start for all, filled in at submission.
    assert_eq!(text(&get("PUSHBENCH_START_AT")["value"]), "${START_AT}");
    let submit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/submit.sh"),
    )
    .unwrap();
    assert!(
        submit.contains("s/\\${START_AT}/$START_AT/"),
        "submit.sh fills the start"
    );

    // The scenario comes from the ConfigMap, mounted where the args read it, and parses.
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let mount_of = |vol: &str| {
        text(
            &mounts
                .iter()
                .find(|m| m["name"] == vol)
                .unwrap_or_else(|| panic!("{vol} mounted"))["mountPath"],
        )
        .to_string()
    };
    let volumes = pod["volumes"].as_sequence().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap().clone();
    let cm = manifest("scenario-configmap.yaml");
    assert_eq!(
        volume("scenario")["configMap"]["name"],
        cm["metadata"]["name"]
    );
    assert_eq!(args[1], format!("{}/scenario.toml", mount_of("scenario")));
    let scenario = text(&cm["data"]["scenario.toml"]);
    pushbench::scenario::parse(scenario, "configmap", &|_| None).expect("the scenario parses");

    // Each shard writes its own directory on the shared volume; the merge reads them all there.
    let out = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    assert!(out.starts_with(&mount_of("results")), "{out}");
    assert!(
        out.contains("$(JOB_COMPLETION_INDEX)"),
        "one directory per shard: {out}"
    );
    let pvc = manifest("results-pvc.yaml");
    assert_eq!(
        volume("results")["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    let merge = manifest("merge-job.yaml");
    let m = &merge["spec"]["template"]["spec"];
    assert_eq!(
        m["volumes"][0]["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    let script = text(&m["containers"][0]["args"][0]);
    assert!(
        script.contains("pushbench merge /results/$PUSHBENCH_RUN/shard-*"),
        "{script}"
    );
    assert_eq!(
        m["containers"][0]["volumeMounts"][0]["mountPath"],
        "/results"
    );
}

#[test]
fn the_slurm_script_runs_one_shard_per_task_then_one_merge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sbatch = std::fs::read_to_string(root.join("deploy/slurm/pushbench.sbatch")).unwrap();
    let srun = sbatch
        .lines()
        .position(|l| l.starts_with("srun "))
        .expect("an srun step");
    let merge = sbatch
        .lines()
        .position(|l| l.contains(" merge ") && l.contains("shard-*"))
        .expect("a merge step");
    assert!(merge > srun, "the merge runs after every shard");
    let step: String = sbatch.lines().skip(srun).take(3).collect();
    for piece in ["--shard auto", "--start-at", "shard-$SLURM_PROCID"] {
        assert!(step.contains(piece), "{piece} in: {step}");
    }
}
