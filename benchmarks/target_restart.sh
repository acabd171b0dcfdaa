#!/bin/bash
# A target that restarts mid-run: the real KServe ModelServer on a fixed loopback port, stopped
# 20 s into a 60 s rate step (SIGTERM), started again 10 s later on the same port.
cd "$(dirname "$0")/.."
D=${RESTART_DIR:-/tmp/restart}; mkdir -p "$D"
serve() { python -m targets.kserve.server.main --model-dir artifacts/model/savedmodel/mnist/1 --model-name mnist --host 127.0.0.1 --http-port 18181 --workers 1 > $D/server$1.log 2>&1 & echo $!; }
S1=$(serve 1); sleep 12
python -m bench run kubeflow-gcp --endpoint http://127.0.0.1:18181 --rate 20 --duration 60s --concurrency 8 --out $D/results --run-id restart1 --no-report > $D/run.log 2>&1 &
R=$!
# the run calibrates its client first; wait until its step is sending
until grep -q '"records_written"' $D/results/restart1/meta.json 2>/dev/null; do sleep 0.5; done
sleep 18; echo "stop $(date -u +%T)" > $D/events.txt; kill -TERM $S1
sleep 10; S2=$(serve 2); echo "start $(date -u +%T)" >> $D/events.txt
wait $R; echo "run rc $?" >> $D/events.txt
kill -TERM $S2
