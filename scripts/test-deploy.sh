#!/usr/bin/env bash
# make test-deploy: deploy/slurm run for real, on a one-node Slurm cluster started here under a temp
# folder (its own slurm.conf, ports, state and spool folders, munge key and socket; the daemons run
# as the user running this, root in CI), exactly as deploy/README.md says, on a tiny generated model:
#
#   1. embed: submit.sh embed 3 (array + merge); embeddings.npy = one `e5 embed`, byte for byte;
#      then a bare `sbatch --array=1 --export=ALL,E5_SHARD_COUNT=3 embed.sbatch` from another folder
#      (logs there, redoes the array's part 1 exactly) and one without E5_SHARD_COUNT (refused);
#   2. embed again, one task killed (SIGKILL) while it runs: the merge refuses and prints the rerun
#      command; that command, run as printed, reruns the task and the merge: the same bytes again;
#   3. eval on the BEIR fixture of the eval tests: submit.sh eval 3 (array + final eval), one task
#      cancelled before it ran: the final eval refuses with the rerun command; run as printed, the
#      report's numbers equal one `e5 eval`;
#   4. an ablation scan of every head on the same fixture: submit.sh scan 3 (array + final scan, the
#      corpus cache of 3. reused): the grid equals one `e5 eval --scan`, every cell from the tasks.
#
# Slurm and munge come from apt where they are missing (Debian: slurmctld slurmd slurm-client munge);
# where they cannot be installed, the test is skipped, saying why. Every daemon started here is
# stopped on exit, failure included; the temp folder is removed on success and kept on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
say() { echo "test-deploy: $*"; }
skip() { say "SKIPPED — $*"; exit 0; }

# ---- Slurm and munge
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || skip "Slurm/munge are not installed and there is no apt-get here"
  [ "$(id -u)" = 0 ] || skip "Slurm/munge are not installed, and installing them needs root (apt-get install slurmctld slurmd slurm-client munge)"
  say "installing Slurm and munge (apt-get install slurmctld slurmd slurm-client munge)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge; } >/tmp/e5-test-deploy-apt.log 2>&1; then
    skip "apt-get could not install Slurm and munge (log: /tmp/e5-test-deploy-apt.log)"
  fi
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/e5-test-deploy.XXXXXX")
started=()
stop_daemons() {
  local code=$? pidfile pid
  # jobs still running (a failure midway) end with the cluster: no task outlives this script
  [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ] && scancel --quiet --user="$(id -un)" 2>/dev/null && sleep 1
  for pidfile in "${started[@]}"; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pidfile in "${started[@]}"; do # wait until each is gone, so nothing outlives this script
    pid=$(cat "$pidfile" 2>/dev/null || true)
    for _ in $(seq 50); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$code" = 0 ]; then
    rm -rf "$T"
  else
    say "FAILED (exit $code); the cluster's logs and the runs are kept in $T"
    tail -n 5 "$T"/slurmctld.log "$T"/slurmd.log 2>/dev/null | sed 's/^/  /' || true
  fi
}
trap stop_daemons EXIT
trap 'exit 130' INT TERM

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# ---- munge: its own key and socket
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/submit"
chmod 700 "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
started+=("$T/munge/munged.pid")
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" --pid-file="$T/munge/munged.pid" \
  --log-file="$T/munge/munged.log" --seed-file="$T/munge/munged.seed" >/dev/null 2>&1 \
  || { cat "$T/munge/munged.log" >&2; exit 1; }

# ---- Slurm: one node with 4 CPUs (two 2-CPU tasks at once), everything under $T
NODE=e5node
cat >"$T/slurm.conf" <<EOF
ClusterName=e5test
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$(id -un)
AuthType=auth/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=4 RealMemory=16384 State=UNKNOWN
PartitionName=e5 Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
started+=("$T/slurmctld.pid" "$T/slurmd.pid")
slurmctld -c -f "$SLURM_CONF" || { cat "$T/slurmctld.log" >&2; exit 1; }
slurmd -f "$SLURM_CONF" -N "$NODE" || { cat "$T/slurmd.log" >&2; exit 1; }
for _ in $(seq 100); do
  [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ] && break
  sleep 0.3
done
[ "$(sinfo -h -n "$NODE" -o %T)" = idle ] || { say "the node did not come up: $(sinfo -h -o '%T %E' || true)"; exit 1; }
say "cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %T') ($(sinfo -V))"

# ---- the model, the inputs, and the single-process references
E5=$REPO/bin/e5
node_modules/.bin/ts-node --transpile-only devtools/generate-model.ts --preset tiny --out "$T/model" >"$T/generate-model.log" 2>&1
node -e '
const w = "the quick brown fox jumps over a lazy dog while protein summit river mountain apple".split(" ");
let s = 7;
const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
for (let i = 0; i < 3000; i++) console.log(Array.from({ length: 1 + Math.floor(r() * 40) }, () => w[Math.floor(r() * w.length)]).join(" "));
' >"$T/passages.txt"
EMBED_ARGS="--chunk-size 100"
EVAL_ARGS="--shard-size 2 --k 1,3"
DATA=$REPO/test/fixtures/eval/tiny
# (their stderr in single.log: TensorFlow's load lines show on a file without make native's dup() addon)
# shellcheck disable=SC2086
"$E5" embed -q --model "$T/model" --offline --input "$T/passages.txt" --prefix passage --progress off --output "$T/single.npy" $EMBED_ARGS 2>>"$T/single.log"
# shellcheck disable=SC2086
"$E5" eval -q --model "$T/model" --offline --no-shard --data "$DATA" --cache "$T/single-cache" --progress off --output "$T/single.json" $EVAL_ARGS 2>>"$T/single.log"

# ---- the README's setup
export E5_HOME=$REPO HF_HOME=$T/hf E5_MODEL=$T/model
cd "$T/submit" # the folder jobs are submitted from: logs/ is made here

job_ids() { grep -o 'job [0-9]*' <<<"$1" | awk '{print $2}' | paste -sd' '; }
# Wait until none of the jobs is queued or running (at most 3 minutes).
wait_jobs() {
  for _ in $(seq 900); do
    [ -z "$(squeue -h -j "$(tr ' ' , <<<"$1")" -o %i 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  say "jobs $1 still queued after 3 minutes:"; squeue >&2; return 1
}
job_state() { scontrol show job "$1" | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
# The command a refused final step printed (the line after "Rerun them"), from its log.
rerun_from_log() { grep -A1 '^Rerun them' "$1" | tail -1 | sed 's/^  //'; }
same_bytes() { cmp "$1" "$2" >/dev/null || { say "$1 and $2 differ"; exit 1; }; }

# 1. embed, the whole job
out=$(E5_INPUT=$T/passages.txt E5_OUT=$T/out/embed E5_ARGS=$EMBED_ARGS "$REPO/deploy/slurm/submit.sh" embed 3)
say "$out"
read -r array merge <<<"$(job_ids "$out")"
wait_jobs "$array $merge"
[ "$(job_state "$merge")" = COMPLETED ] || { cat logs/e5-merge-"$merge".log >&2; say "the merge did not complete"; exit 1; }
same_bytes "$T/out/embed/embeddings.npy" "$T/single.npy"
say "1. embed array + merge: embeddings.npy is the single run's, byte for byte"

# 1b. a bare sbatch from another folder, as deploy/README.md shows for a rerun by hand: it logs to
# slurm-<job>_<task>.out there (the scripts name no log folder that could be missing), and without
# E5_SHARD_COUNT the task refuses to start rather than embed all of the input as shard 0/1
mkdir -p "$T/elsewhere"
bare=$(cd "$T/elsewhere" && E5_INPUT=$T/passages.txt E5_OUT=$T/out/bare E5_ARGS=$EMBED_ARGS sbatch --parsable --array=1 --export=ALL,E5_SHARD_COUNT=3 "$REPO/deploy/slurm/embed.sbatch")
nocount=$(cd "$T/elsewhere" && E5_INPUT=$T/passages.txt E5_OUT=$T/out/bare E5_ARGS=$EMBED_ARGS sbatch --parsable --array=2 "$REPO/deploy/slurm/embed.sbatch")
wait_jobs "${bare%%;*} ${nocount%%;*}"
cmp "$T/out/bare/part-00001.npy" "$T/out/embed/part-00001.npy" || { say "a bare rerun of task 1 differs from the array's"; exit 1; }
[ -e "$T/elsewhere/slurm-${bare%%;*}_1.out" ] || { say "no slurm-${bare%%;*}_1.out in the folder it was submitted from"; exit 1; }
grep -q 'set E5_SHARD_COUNT to N' "$T/elsewhere/slurm-${nocount%%;*}_2.out" || { cat "$T/elsewhere/slurm-${nocount%%;*}_2.out" >&2; say "a task without E5_SHARD_COUNT did not refuse"; exit 1; }
[ ! -e "$T/out/bare/part-00002.npy" ] || { say "a task without E5_SHARD_COUNT wrote a part"; exit 1; }
say "1b. a bare sbatch from another folder logs there; task 1 of 3 redone by hand is the array's part; without E5_SHARD_COUNT a task refuses"

# 2. embed, task 1 killed while it runs
out=$(E5_INPUT=$T/passages.txt E5_OUT=$T/out/embed-kill E5_ARGS=$EMBED_ARGS "$REPO/deploy/slurm/submit.sh" embed 3)
read -r array merge <<<"$(job_ids "$out")"
# its output's temp file exists from before the first batch until the end: kill in between
for _ in $(seq 600); do
  compgen -G "$T/out/embed-kill/.part-00001.npy.*" >/dev/null && break
  sleep 0.05
done
scancel --signal=KILL --full "${array}_1"
wait_jobs "$array $merge"
[ ! -e "$T/out/embed-kill/part-00001.npy.shard.json" ] || { say "task 1 finished before it could be killed"; exit 1; }
[ "$(job_state "$merge")" = FAILED ] || { say "the merge after a killed task: $(job_state "$merge"), expected FAILED"; exit 1; }
grep -q '^e5-merge: task(s) 1 of the 3 did not finish' "logs/e5-merge-$merge.log" || { cat "logs/e5-merge-$merge.log" >&2; exit 1; }
cmd=$(rerun_from_log "logs/e5-merge-$merge.log")
say "2. task 1 killed; the merge refused; rerunning as it says: $cmd"
out=$(env -i PATH="$PATH" SLURM_CONF="$SLURM_CONF" HOME="$HOME" bash -c "$cmd") # only what the command itself sets
read -r array merge <<<"$(job_ids "$out")"
wait_jobs "$array $merge"
[ "$(job_state "$merge")" = COMPLETED ] || { cat logs/e5-merge-"$merge".log >&2; say "the merge after the rerun did not complete"; exit 1; }
same_bytes "$T/out/embed-kill/embeddings.npy" "$T/single.npy"
say "2. after the rerun: embeddings.npy is the single run's, byte for byte"

# 3. eval, task 2 cancelled before it ran (tasks 0 and 1 hold the node's 4 CPUs, 2 each)
out=$(E5_DATA=$DATA E5_CACHE_DIR=$T/cache E5_OUT=$T/out/eval E5_ARGS=$EVAL_ARGS "$REPO/deploy/slurm/submit.sh" eval 3)
read -r array final <<<"$(job_ids "$out")"
scancel "${array}_2"
wait_jobs "$array $final"
[ "$(job_state "$final")" = FAILED ] || { say "the final eval after a cancelled task: $(job_state "$final"), expected FAILED"; exit 1; }
grep -q '^e5-eval-final: task(s) 2 of the 3 did not finish' "logs/e5-eval-final-$final.log" || { cat "logs/e5-eval-final-$final.log" >&2; exit 1; }
[ ! -e "$T/out/eval/report.json" ] || { say "a report was written"; exit 1; }
cmd=$(rerun_from_log "logs/e5-eval-final-$final.log")
say "3. eval task 2 cancelled; the final eval refused; rerunning as it says: $cmd"
out=$(env -i PATH="$PATH" SLURM_CONF="$SLURM_CONF" HOME="$HOME" bash -c "$cmd")
read -r array final <<<"$(job_ids "$out")"
wait_jobs "$array $final"
[ "$(job_state "$final")" = COMPLETED ] || { cat "logs/e5-eval-final-$final.log" >&2; say "the final eval after the rerun did not complete"; exit 1; }
# The numbers equal; what differs is where and when (timings, cache use, paths).
node -e '
const fs = require("fs");
const [a, b] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const numbers = (r) => JSON.stringify({ means: r.means, scores: r.scores, perQuery: r.perQuery, counts: r.counts, settings: r.settings });
if (numbers(a) !== numbers(b)) { console.error("test-deploy: report.json differs from the single run"); process.exit(1); }
' "$T/out/eval/report.json" "$T/single.json"
grep -q 'cache 3/3 shards reused' "logs/e5-eval-final-$final.log" || { cat "logs/e5-eval-final-$final.log" >&2; say "the final eval did not reuse the tasks' cache shards"; exit 1; }
say "3. after the rerun: the report's numbers are the single run's; the final eval reused the tasks' 3 cache shards"
# 4. an ablation scan, the whole job: every head mean-ablated, the cells over 3 tasks, then the grid
SCAN_ARGS="--scan heads --ablate-mode mean --metric ndcg@3"
# shellcheck disable=SC2086
"$E5" eval -q --model "$T/model" --offline --no-shard --data "$DATA" --cache "$T/single-cache" --progress off --output "$T/single-scan.json" $SCAN_ARGS $EVAL_ARGS 2>>"$T/single.log"
out=$(E5_DATA=$DATA E5_CACHE_DIR=$T/cache E5_OUT=$T/out/scan E5_SCAN_ARGS=$SCAN_ARGS E5_ARGS=$EVAL_ARGS "$REPO/deploy/slurm/submit.sh" scan 3)
read -r array final <<<"$(job_ids "$out")"
wait_jobs "$array $final"
[ "$(job_state "$final")" = COMPLETED ] || { cat "logs/e5-scan-final-$final.log" >&2; say "the final scan did not complete"; exit 1; }
[ -s "$T/out/scan/scan.html" ] || { say "no scan.html"; exit 1; }
node -e '
const fs = require("fs");
const [a, b] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const numbers = (r) => JSON.stringify({ grid: r.grid, deltaGrid: r.deltaGrid, cells: r.cells.map((c) => [c.label, c.means, c.perQueryDelta]) });
if (numbers(a) !== numbers(b)) { console.error("test-deploy: the scan grid differs from the single run"); process.exit(1); }
if (a.cache.reused !== a.cache.cells || a.cache.computed !== 0) { console.error(`test-deploy: the final scan computed ${a.cache.computed} of ${a.cache.cells} cells`); process.exit(1); }
' "$T/out/scan/report.json" "$T/single-scan.json"
say "4. scan: the grid is the single run's; the final scan took every cell from the tasks"
say "passed"
