#!/bin/bash
# A Slurm job that survives its time limit and preemption: Slurm sends SIGUSR1 to every rank
# 120 s before the end, lowbit finishes its step, writes runs/r20/last.ckpt and exits 75, and the
# job requeues itself; the next start continues with --resume, bit for bit. A checkpoint every
# 20 minutes bounds what a lost node (SIGKILL) costs; --keep 2 keeps the previous one in case the
# newest was cut short.
#SBATCH --job-name=r20 --nodes=4 --ntasks-per-node=1 --cpus-per-task=32 --time=02:00:00
#SBATCH --signal=USR1@120 --requeue --open-mode=append --output=r20-%j.log
export OPENBLAS_NUM_THREADS=1
out=runs/r20
resume=()
[ -f "$out/last.ckpt" ] && resume=(--resume)
srun --mpi=pmix build/tools/lowbit train --model resnet20 --data cifar10:/data/cifar-10-batches-bin \
    --augment --batch 1024 --lr 0.4 --warmup-epochs 5 --sync-bn --epochs 200 \
    --checkpoint-minutes 20 --keep 2 --out "$out" "${resume[@]}"
status=$?
if [ "$status" -eq 75 ]; then
  scontrol requeue "$SLURM_JOB_ID"  # stopped by the signal with a checkpoint: run again later
fi
exit "$status"
