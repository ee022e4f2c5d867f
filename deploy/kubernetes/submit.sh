#!/usr/bin/env bash
# Submits one sharded run: the scenario ConfigMap and results volume, the shards' Indexed Job
# with a common start a little ahead (START_DELAY, default 60 s: time for every pod to be
# scheduled and pull the image), then, once every shard completed, the merge Job.
#
#   deploy/kubernetes/submit.sh [NAMESPACE]
#
# Needs kubectl pointed at the cluster and the image (deploy/kubernetes/Dockerfile) pushed where
# the cluster pulls from (edit `image:` in the two Jobs). Results: /results/<RUN>/merged.
set -euo pipefail
cd "$(dirname "$0")"
NS=${1:-default}
export START_AT=$(( $(date +%s) + ${START_DELAY:-60} ))
export RUN=${RUN:-run-$(date -u +%Y%m%dT%H%M%SZ)}
fill() { sed -e "s/\${START_AT}/$START_AT/" -e "s/\${RUN}/$RUN/" "$1"; }
kubectl -n "$NS" apply -f scenario-configmap.yaml -f results-pvc.yaml
kubectl -n "$NS" delete job pushbench-shards pushbench-merge --ignore-not-found
fill shards-job.yaml | kubectl -n "$NS" apply -f -
# A shard that failed (exit 3) still wrote its results so far: wait for the Job to end either way.
kubectl -n "$NS" wait --for=condition=complete --timeout=2h job/pushbench-shards ||
  kubectl -n "$NS" wait --for=condition=failed --timeout=1m job/pushbench-shards || true
fill merge-job.yaml | kubectl -n "$NS" apply -f -
kubectl -n "$NS" wait --for=condition=complete --timeout=30m job/pushbench-merge
kubectl -n "$NS" logs job/pushbench-merge
