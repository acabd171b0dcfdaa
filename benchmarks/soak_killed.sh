#!/bin/bash
# 35-minute steady soak at 50 req/s against kubeflow-gcp, SIGKILLed at 33 min; RSS sampled every 10 s.
# Usage: bash benchmarks/soak_killed.sh   (SOAK_DIR=/tmp/soak by default; then: python -m bench report $SOAK_DIR/results/soak35)
mkdir -p "${SOAK_DIR:-/tmp/soak}"
cd "$(dirname "$0")/.."
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg)" > ${SOAK_DIR:-/tmp/soak}/facts.txt
python -m bench run kubeflow-gcp --rate 50 --duration 35m --concurrency 32 --out ${SOAK_DIR:-/tmp/soak}/results --run-id soak35 --no-report > ${SOAK_DIR:-/tmp/soak}/stdout.txt 2> ${SOAK_DIR:-/tmp/soak}/stderr.txt &
PID=$!
echo "pid $PID" >> ${SOAK_DIR:-/tmp/soak}/facts.txt
for i in $(seq 1 198); do
  sleep 10
  rss=$(grep VmRSS /proc/$PID/status 2>/dev/null | awk '{print $2}')
  n=$(python - <<PY 2>/dev/null
import json;m=json.load(open('${SOAK_DIR:-/tmp/soak}/results/soak35/meta.json'));print(json.dumps(m.get('checkpoint', m.get('progress','')))[:200])
PY
)
  echo "$(date -u +%T) t=$((i*10)) rss_kb=$rss load=$(cut -d' ' -f1 /proc/loadavg) ckpt=$n" >> ${SOAK_DIR:-/tmp/soak}/rss.txt
done
echo "kill -9 at $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >> ${SOAK_DIR:-/tmp/soak}/facts.txt
kill -9 $PID
sleep 15
echo "after kill: processes $(pgrep -fa 'targets.kserve|bench run' | wc -l)" >> ${SOAK_DIR:-/tmp/soak}/facts.txt
pgrep -fa 'targets.kserve.server|bench run kubeflow' >> ${SOAK_DIR:-/tmp/soak}/facts.txt
