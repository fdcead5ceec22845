#!/bin/bash
# A data-set command as a Slurm array, for submitting by hand (what `vidlrp submit slurm`
# writes for you). Edit the command, then:
#   jid=$(sbatch --parsable --array=0-3 vidlrp-array.sh)
#   sbatch --dependency=afterok:$jid vidlrp-merge.sh
# Task i computes shard i/N into $OUT/shards/i; a failed task can be rerun alone
# (sbatch --array=I vidlrp-array.sh) and continues from its journal (--resume).
#SBATCH --job-name=vidlrp-sweep
#SBATCH --output=slurm-vidlrp-%A_%a.log
#SBATCH --cpus-per-task=8
##SBATCH --partition=gpu
##SBATCH --gres=gpu:1
##SBATCH --time=04:00:00
set -euo pipefail
OUT=${OUT:-steps}
N=${SLURM_ARRAY_TASK_COUNT:?submit as an array job}
exec vidlrp sweep-steps --manifest videos.csv --labels labels.txt --weights c3d.safetensors \
  --shard "$SLURM_ARRAY_TASK_ID/$N" --out "$OUT/shards/$SLURM_ARRAY_TASK_ID" --resume
