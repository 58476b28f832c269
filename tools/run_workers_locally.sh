#!/usr/bin/env bash
# Try multi-worker training on one machine: start N `tfadv train CONFIG` workers on
# 127.0.0.1, each with its own TF_CONFIG, and wait for all of them.
#
#   tools/run_workers_locally.sh configs/digits/standard.yaml 2 --set train.distribute=multi_worker
#
# This only sets TF_CONFIG and runs `tfadv train`; on a real cluster each machine runs the
# same command with its own TF_CONFIG (see "Beyond one machine" in the README), typically
# through the cluster's scheduler.
set -euo pipefail
config=${1:?usage: $0 CONFIG [WORKERS] [tfadv train options...]}
workers=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
base_port=${TFADV_BASE_PORT:-23456}

hosts=""
for ((i = 0; i < workers; i++)); do
  hosts+="${hosts:+, }\"127.0.0.1:$((base_port + i))\""
done

pids=()
for ((i = 0; i < workers; i++)); do
  TF_CONFIG="{\"cluster\": {\"worker\": [$hosts]}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    tfadv train "$config" "$@" > "worker-$i.log" 2>&1 &
  pids+=($!)
  echo "worker $i: pid $!, log worker-$i.log"
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit $status
