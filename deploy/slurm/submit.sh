#!/bin/bash
# deploy/slurm/submit.sh embed|eval|scan N [sbatch options...]
#
# Submits the job array of N tasks (0..N-1; E5_TASKS=3,7 submits only those, to rerun them), then
# the final step (merge.sbatch, eval-final.sbatch or scan-final.sbatch) with --dependency=afterany:<array>: it starts
# once every task has ended, however it ended, checks that each one finished, and when one did not
# it refuses (exit 1) and prints the command that reruns those tasks and the final step after them.
#
# Every job gets this shell's E5_* variables (sbatch exports the environment) and E5_SHARD_COUNT=N,
# so a task's id is its shard index, in the first run and in a rerun alike. Logs go to $E5_LOGS
# (default ./logs/, made here): $E5_LOGS/e5-embed-<array>_<task>.log, e5-merge-<job>.log, ...
set -euo pipefail
usage() {
  echo "usage: [E5_TASKS=i,j-k] $0 embed|eval|scan N [sbatch options...]" >&2
  exit 2
}
[ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] && { [ "$1" = embed ] || [ "$1" = eval ] || [ "$1" = scan ]; } || usage
what=$1 n=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)

need=(E5_HOME E5_OUT)
[ "$what" = embed ] && need+=(E5_INPUT) || need+=(E5_DATA E5_CACHE_DIR)
for v in "${need[@]}"; do
  [ -n "${!v:-}" ] || { echo "$0: set $v (deploy/README.md: Slurm)" >&2; exit 2; }
done

# The tasks, as a list of ids below N (E5_TASKS: sbatch's --array syntax without steps).
tasks=${E5_TASKS:-0-$((n - 1))}
[[ $tasks =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]] || { echo "$0: E5_TASKS=$tasks: expected task ids and ranges, e.g. 3,7 or 0-3,9" >&2; exit 2; }
ids=()
for r in ${tasks//,/ }; do
  for ((i = 10#${r%-*}; i <= 10#${r#*-}; i++)); do ids+=("$i"); done
done
for i in "${ids[@]}"; do
  ((i < n)) || { echo "$0: E5_TASKS=$tasks: task $i is not below N=$n" >&2; exit 2; }
done

export E5_SHARD_COUNT=$n
export E5_LOGS=${E5_LOGS:-$PWD/logs}
export E5_SUBMIT="$here/submit.sh"
E5_SUBMIT_ARGS=$( (($# == 0)) || printf ' %q' "$@")
export E5_SUBMIT_ARGS
mkdir -p "$E5_LOGS" "$E5_OUT"
# What says a task finished (the final step checks it) is removed before the task is queued, so
# nothing from an earlier run can stand in for it: an embed part's sidecar, an eval or scan task's mark.
for i in "${ids[@]}"; do
  if [ "$what" = embed ]; then rm -f "$E5_OUT/part-$(printf %05d "$i").npy.shard.json"
  else rm -f "$E5_OUT/tasks/$what-$i.done"; fi
done

case $what in embed) final=merge ;; eval) final=eval-final ;; scan) final=scan-final ;; esac
array=$(sbatch --parsable --array="$tasks" --output="$E5_LOGS/%x-%A_%a.log" "$@" "$here/$what.sbatch")
array=${array%%;*}
after=$(E5_ARRAY_JOB=$array sbatch --parsable --dependency="afterany:$array" --output="$E5_LOGS/%x-%j.log" "$@" "$here/$final.sbatch")
echo "array job $array (tasks $tasks of $n, $what.sbatch), then job ${after%%;*} ($final.sbatch); logs in $E5_LOGS"
