#!/usr/bin/env bash
# test_cluster.sh: what clusters do to a `lowbit train` job, end to end through the CLI:
#   * SIGTERM at a random step of a 2-epoch run (1 process; 2 ranks under mpirun, the signal sent
#     to one rank only): exit status 75, then --resume ends with a last.ckpt byte-identical (cmp)
#     to an uninterrupted run's;
#   * SIGINT twice: status 130 at once;
#   * SIGKILL after a --checkpoint-every 5 write: --resume restarts at a multiple of 5 steps (so at
#     most 5 are lost) and still ends byte-identical;
#   * a truncated newest checkpoint: --resume warns naming it, falls back to last.ckpt.1 (--keep 2)
#     and still ends byte-identical;
#   * a full disk (RLIMIT_FSIZE with SIGXFSZ ignored, so write() fails with EFBIG) and an output
#     folder that cannot be created: one `error:` line naming the file and the cause, status 1, and
#     the previous checkpoint unchanged and resumable;
#   * a 2-rank mid-epoch checkpoint (SIGUSR1 to mpirun, which forwards it) resumes at 1 process
#     byte-identical to the uninterrupted run (--sync-bn, local batches a multiple of 8) and at 3 ranks
#     (same global batch); another global batch is one error;
#   * the Slurm script of docs/distributed.md (tools/examples/slurm_requeue.sh) passes bash -n and
#     is the one the docs show.
# Usage (meson runs it): test_cluster.sh LOWBIT_EXE SOURCE_DIR [MPIRUN]
set -uo pipefail
lowbit=$1 src=$2 mpirun=${3:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_cluster.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# 2 epochs of 20 steps of 64 images: a few seconds per run. Only the flags of each case are added.
args="train --model convnet --data fashion-mnist --batch 64 --max-steps 20 --epochs 2 --eval-limit 64 --seed 3
      --threads 1 --lr 0.02"

# Starts `$@` in the background (its pid in $pid, output in $log) and returns once training began:
# the set-up line is printed after the signal handlers are installed, just before the first step.
start() {
  log=$1
  shift
  "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    grep -q "^lowbit train:" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
}

random_delay() { sleep "0.$(printf '%03d' $((RANDOM % 1000)))"; }

# expect WANT LOG REGEX WHAT: the last run ($status) exited WANT and LOG has a line matching REGEX.
expect() {
  local want=$1 log=$2 regex=$3 what=$4
  if [ "$status" -eq "$want" ] && grep -q "$regex" "$log"; then
    pass "$what: $(grep -m1 "$regex" "$log")"
  else
    cat "$log"
    fail "$what: expected status $want and a line matching '$regex', got status $status"
  fi
}

# --- 1 process -----------------------------------------------------------------------------------
"$lowbit" $args --out full >full.log 2>&1 || { cat full.log; fail "uninterrupted run"; }

start term.log "$lowbit" $args --out term
random_delay
kill -TERM "$pid"
wait "$pid"
status=$?
expect 75 term.log "^stopped by SIGTERM .*resume with the same command and --resume" "SIGTERM"
"$lowbit" $args --out term --resume >resume.log 2>&1 || { cat resume.log; fail "resume after SIGTERM"; }
cmp full/last.ckpt term/last.ckpt && pass "SIGTERM + --resume == uninterrupted (cmp)" || fail "SIGTERM + --resume differs"

start kill.log "$lowbit" $args --out kill --checkpoint-every 5 --keep 2
for _ in $(seq 600); do [ -f kill/last.ckpt ] && break; sleep 0.05; done
random_delay
kill -KILL "$pid"
wait "$pid" 2>/dev/null
"$lowbit" $args --out kill --resume >resume.log 2>&1 || { cat resume.log; fail "resume after SIGKILL"; }
at=$(sed -n 's/^resuming from .* after step \([0-9]*\)$/\1/p' resume.log)
if grep -q "^resuming from .* after epoch 1$" resume.log || { [ -n "$at" ] && [ $((at % 5)) -eq 0 ]; }; then
  pass "SIGKILL: resumed at a --checkpoint-every 5 boundary ($(grep '^resuming' resume.log))"
else
  cat resume.log
  fail "SIGKILL: expected to resume at a multiple of 5 steps"
fi
cmp full/last.ckpt kill/last.ckpt && pass "SIGKILL + --resume == uninterrupted (cmp)" || fail "SIGKILL + --resume differs"

# Ctrl-C twice: the second one ends the process at once (status 130), leaving no partial file. Steps
# of 512 images take long enough for the second signal to land inside the first one's step.
start int.log "$lowbit" ${args/--batch 64/--batch 512} --out int
kill -INT "$pid"
sleep 0.2
kill -INT "$pid"
wait "$pid"
status=$?
[ "$status" -eq 130 ] && pass "SIGINT twice: status 130 at once" || { cat int.log; fail "SIGINT twice: expected 130, got $status"; }
ls int 2>/dev/null | grep -q tmp && fail "SIGINT twice: a temporary file was left behind: $(ls int)"

# A newest checkpoint cut short (the node died while it was written): fall back to last.ckpt.1.
start trunc.log "$lowbit" $args --out trunc --checkpoint-every 5 --keep 2
for _ in $(seq 600); do [ -f trunc/last.ckpt.1 ] && break; sleep 0.05; done
kill -TERM "$pid"
wait "$pid"
size=$(stat -c %s trunc/last.ckpt)
truncate -s $((size / 2)) trunc/last.ckpt
"$lowbit" $args --out trunc --resume >resume.log 2>&1 || { cat resume.log; fail "resume from a truncated newest checkpoint"; }
if grep -q "^warning: bad checkpoint trunc/last.ckpt: .*falling back" resume.log &&
   grep -q "^resuming from trunc/last.ckpt.1 " resume.log; then
  pass "truncated last.ckpt: $(grep '^warning' resume.log)"
else
  cat resume.log
  fail "truncated last.ckpt: expected a warning naming it and a resume from last.ckpt.1"
fi
cmp full/last.ckpt trunc/last.ckpt && pass "fallback + --resume == uninterrupted (cmp)" || fail "fallback + --resume differs"

# A full disk: the first epoch's checkpoint exists; the next write fails with EFBIG.
"$lowbit" $args --out disk --stop-after 1 >disk.log 2>&1 || { cat disk.log; fail "run to the first epoch"; }
cp disk/last.ckpt previous.ckpt
limit_kb=$(( $(stat -c %s disk/last.ckpt) / 1024 / 2 ))
(ulimit -f "$limit_kb"; trap '' XFSZ; exec "$lowbit" $args --out disk --resume --checkpoint-every 3) >disk.log 2>&1
status=$?
expect 1 disk.log "^error: cannot write disk/last.ckpt: File too large$" "full disk"
[ "$(grep -c '^error:' disk.log)" -eq 1 ] || fail "full disk: more than one error line"
cmp previous.ckpt disk/last.ckpt && pass "full disk: the previous checkpoint is unchanged" ||
  fail "full disk: the previous checkpoint changed"
ls disk | grep -q tmp && fail "full disk: a temporary file was left behind: $(ls disk)"
"$lowbit" $args --out disk --resume >resume.log 2>&1 && cmp full/last.ckpt disk/last.ckpt &&
  pass "full disk: the previous checkpoint resumes to the uninterrupted result" ||
  { cat resume.log; fail "full disk: resume from the previous checkpoint"; }

touch not_a_folder
"$lowbit" $args --out not_a_folder/run >out.log 2>&1
status=$?
expect 1 out.log "^error: cannot create the output folder not_a_folder/run: Not a directory$" "unwritable OUT"

# Another global batch cannot continue a run.
"$lowbit" ${args/--batch 64/--batch 32} --out term --resume >batch.log 2>&1
status=$?
expect 1 batch.log "^error: cannot resume from term/last.ckpt: it was trained with a global batch of 64, this run's is 32" \
  "another global batch"

# --- the Slurm script of the docs ------------------------------------------------------------------
script="$src/tools/examples/slurm_requeue.sh"
bash -n "$script" && pass "slurm_requeue.sh passes bash -n" || fail "slurm_requeue.sh: bash -n"
python3 - "$script" "$src/docs/distributed.md" <<'EOF' && pass "docs/distributed.md shows slurm_requeue.sh" || fail "docs/distributed.md does not show slurm_requeue.sh as it is"
import sys
script, doc = (open(p).read() for p in sys.argv[1:3])
sys.exit(0 if script.strip() in doc else 1)
EOF

# --- under mpirun ----------------------------------------------------------------------------------
if [ -z "$mpirun" ]; then
  echo "no mpirun: the data-parallel cases are skipped"
else
  mpi="timeout 300 $mpirun --oversubscribe"
  mpi_bg="$mpirun --oversubscribe"  # started in the background: $pid must be mpirun's own
  $mpi -np 2 "$lowbit" $args --out full2 >full2.log 2>&1 || { cat full2.log; fail "2 ranks: uninterrupted run"; }
  start term2.log $mpi_bg -np 2 "$lowbit" $args --out term2
  random_delay
  ranks=($(pgrep -P "$pid"))  # mpirun's children: the ranks
  victim=${ranks[$((RANDOM % ${#ranks[@]}))]}
  kill -TERM "$victim"
  wait "$pid"
  status=$?
  expect 75 term2.log "^stopped by" "2 ranks, SIGTERM to one rank"
  [ "$(grep -c '^stopped by' term2.log)" -eq 1 ] || fail "2 ranks: more than one 'stopped by' line"
  $mpi -np 2 "$lowbit" $args --out term2 --resume >resume.log 2>&1 || { cat resume.log; fail "2 ranks: resume"; }
  cmp full2/last.ckpt term2/last.ckpt && pass "2 ranks: SIGTERM + --resume == uninterrupted (cmp)" ||
    fail "2 ranks: SIGTERM + --resume differs"

  # 2 ranks -> 1 process inside an epoch, with --sync-bn and local batches of 32 (a multiple of 8):
  # both are the one-process computation (docs/distributed.md), so this too ends byte-identical.
  start sync.log $mpi_bg -np 2 "$lowbit" $args --sync-bn --out sync --checkpoint-every 13
  for _ in $(seq 600); do [ -f sync/last.ckpt ] && break; sleep 0.05; done
  kill -USR1 "$pid"  # mpirun forwards SIGUSR1 to every rank
  wait "$pid"
  status=$?
  expect 75 sync.log "^stopped by SIGUSR1" "2 ranks, SIGUSR1 to mpirun"
  "$lowbit" $args --sync-bn --out sync --resume >resume.log 2>&1 || { cat resume.log; fail "2 ranks -> 1: resume"; }
  cmp full/last.ckpt sync/last.ckpt && pass "2 ranks (--sync-bn) -> 1 process: == uninterrupted (cmp; $(grep '^resuming' resume.log))" ||
    fail "2 ranks (--sync-bn) -> 1 process differs"

  # 2 -> 3 ranks inside an epoch: the global batch (96) stays, each rank's share changes.
  args96="${args/--batch 64/--batch 96} --sync-bn"
  start ranks.log $mpi_bg -np 2 "$lowbit" $args96 --out ranks --checkpoint-every 7
  for _ in $(seq 600); do [ -f ranks/last.ckpt ] && break; sleep 0.05; done
  kill -USR1 "$pid"
  wait "$pid"
  status=$?
  expect 75 ranks.log "^stopped by SIGUSR1" "2 ranks (global batch 96), SIGUSR1 to mpirun"
  if $mpi -np 3 "$lowbit" $args96 --out ranks --resume >resume.log 2>&1 &&
     grep -q "^resuming from ranks/last.ckpt" resume.log && grep -q "^done:" resume.log; then
    pass "2 -> 3 ranks: resumed and finished ($(grep '^resuming' resume.log))"
  else
    cat resume.log
    fail "2 -> 3 ranks: resume"
  fi
fi

[ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "all cluster cases pass"
