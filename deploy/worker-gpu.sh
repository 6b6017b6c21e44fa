#!/bin/sh
# The GPU worker: one Celery pool process per visible GPU, each pinned to its own GPU
# (worker/tasks.py sets CUDA_VISIBLE_DEVICES per process from WORKER_GPUS). Scale out with
# `docker compose up --scale worker-gpu=N` or more hosts on the same REDIS_URL/DATABASE_URL.
set -eu
if [ -z "${WORKER_GPUS:-}" ]; then
  WORKER_GPUS=${CUDA_VISIBLE_DEVICES:-$(python -c 'import torch; print(",".join(str(i) for i in range(torch.cuda.device_count())))')}
fi
if [ -z "$WORKER_GPUS" ]; then
  echo "worker-gpu: no GPU is visible (CUDA_VISIBLE_DEVICES, WORKER_GPUS)" >&2
  exit 1
fi
export WORKER_GPUS
count=$(echo "$WORKER_GPUS" | tr ',' '\n' | grep -c .)
exec celery -A backend worker -Q gpu --concurrency "${WORKER_CONCURRENCY:-$count}" \
  --prefetch-multiplier 1 --loglevel INFO --hostname "gpu@%h"
