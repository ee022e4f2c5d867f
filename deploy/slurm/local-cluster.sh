#!/usr/bin/env bash
# Rehearses the Slurm deployment on this machine: starts a one-node Slurm on localhost
# (munged, slurmctld, slurmd with proctrack/linuxproc; Debian's slurm-wlm and munge), submits
# deploy/slurm/pushbench.sbatch with 3 tasks (3 shards + the merge step) on a short two-model
# scenario against the built-in targets, waits for it, and checks the merged totals: 3 shards,
# every scheduled event accounted, the merged counts the shards' sums. Stops what it started.
#
#   sudo deploy/slurm/local-cluster.sh          # needs root (munge key, daemons); ~1 min
#
# Install first: apt-get install slurm-wlm munge. PUSHBENCH=path uses that binary instead of
# building the release one (CI passes its debug build). KEEP=1 keeps the work directory.
# Not part of `cargo test`; .ci/run runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${PUSHBENCH:-}" ]; then
  PB=$(realpath "$PUSHBENCH")
else
  cargo build --release --quiet
  PB=$PWD/target/release/pushbench
fi
WORK=$(mktemp -d /tmp/pushbench-slurm.XXXXXX)
chmod 755 "$WORK"
NODE=$(hostname -s)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
for cmd in slurmctld slurmd munged sbatch; do
  command -v "$cmd" >/dev/null || { echo "$cmd not found: apt-get install slurm-wlm munge" >&2; exit 2; }
done

# munge: a key of our own, the daemon on a socket of our own.
mkdir -p "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$WORK/munge" 2>/dev/null || true
chmod 700 "$WORK/munge"; chmod 400 "$WORK/munge/munge.key"
MUNGE_SOCKET=$WORK/munge/munge.socket
munged --force --key-file="$WORK/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
  --seed-file="$WORK/munge/seed"
sleep 0.5
PIDS+=("$(cat "$WORK/munge/munged.pid")")

# Slurm: one node, this machine; more CPUs declared than it has, so 3 tasks fit.
mkdir -p "$WORK/spool/ctld" "$WORK/spool/d" "$WORK/log"
cat > "$WORK/slurm.conf" <<CONF
ClusterName=pushbench-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$WORK/spool/ctld
SlurmdSpoolDir=$WORK/spool/d
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$WORK/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  [ -s "$WORK/slurmctld.pid" ] && [ -s "$WORK/slurmd.pid" ] && break
  sleep 0.1
done
PIDS+=("$(cat "$WORK/slurmctld.pid")" "$(cat "$WORK/slurmd.pid")")
for _ in $(seq 100); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 0.2
done
sinfo

cat > "$WORK/scenario.toml" <<TOML
name = "slurm-rehearsal"
[workload]
events_per_second = 600
subscribers = 60
duration = "3s"
warmup = "1s"
[webhook]
pool = 8
[websocket]
[thresholds]
"webhook.failed" = "== 0"
"websocket.failed" = "== 0"
TOML
START=$(date +%s.%N)
PUSHBENCH=$PB START_DELAY=5 sbatch --wait --ntasks=3 --cpus-per-task=1 \
  --output="$WORK/job-%j.out" deploy/slurm/pushbench.sbatch "$WORK/scenario.toml" "$WORK/results"
echo "job done in $(python3 -c "import time; print(round(time.time() - $START, 1))") s"
tail -5 "$WORK"/job-*.out
python3 - "$WORK/results" <<'PY'
import json, os, sys
d = sys.argv[1]
merged = json.load(open(f"{d}/merged/summary.json"))
parts = [json.load(open(f"{d}/shard-{i}/summary.json")) for i in range(3)]
assert [s["index"] for s in merged["shards"]] == [0, 1, 2], merged["shards"]
for i, m in enumerate(merged["models"]):
    for key in ("events", "delivered", "failed"):
        assert m[key] == sum(p["models"][i][key] for p in parts), (m["model"], key)
    assert m["events"] == 600 * 3, (m["model"], m["events"])
starts = [s["started_s"] for s in merged["shards"]]
print(f"slurm: 3 shards merged: " + ", ".join(
    f"{m['model']} {m['delivered']}/{m['events']} delivered" for m in merged["models"])
    + f"; shard starts spread over {max(starts) - min(starts):.3f} s")
PY
