#!/bin/bash
# deploy/slurm/submit.sh embed|eval N [sbatch options...]
# Submits N array tasks (0..N-1), then the final step (merge, or the final eval) to run only once
# every task has succeeded. The E5_* variables are passed on to the jobs (sbatch exports the
# environment by default). Logs go to ./logs/.
set -euo pipefail
if [ $# -lt 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]] || { [ "$1" != embed ] && [ "$1" != eval ]; }; then
  echo "usage: $0 embed|eval N [sbatch options...]" >&2
  exit 2
fi
what=$1 n=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
final=$([ "$what" = embed ] && echo merge.sbatch || echo eval-final.sbatch)
mkdir -p logs
array=$(sbatch --parsable --array="0-$((n - 1))" "$@" "$here/$what.sbatch")
array=${array%%;*}
after=$(sbatch --parsable --dependency="afterok:$array" "$@" "$here/$final")
echo "array job $array ($n tasks of $what.sbatch), then job ${after%%;*} ($final)"
