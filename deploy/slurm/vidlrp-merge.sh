#!/bin/bash
# Merges the shards of vidlrp-array.sh into $OUT once every task succeeded
# (sbatch --dependency=afterok:<array job id> vidlrp-merge.sh).
#SBATCH --job-name=vidlrp-merge
#SBATCH --output=slurm-vidlrp-merge-%j.log
set -euo pipefail
OUT=${OUT:-steps}
exec vidlrp merge "$OUT"/shards/* --out "$OUT"
