#!/usr/bin/env bash
# Stops what start_slurm.sh started (by the pids it recorded) and removes its folder.
set -uo pipefail
DIR=${ISOFLOP_SLURM_DIR:-/tmp/isoflop-slurm}
[[ -d $DIR ]] || { echo "stop_slurm: nothing in $DIR"; exit 0; }
export SLURM_CONF=$DIR/slurm.conf
scancel --full --user="$(id -un)" 2>/dev/null
for daemon in slurmd slurmctld munged; do
    pid=$(cat "$DIR/$daemon.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
done
[[ $(readlink /etc/slurm/slurm.conf 2>/dev/null) == "$SLURM_CONF" ]] && rm -f /etc/slurm/slurm.conf
rm -rf "$DIR"
echo "stop_slurm: stopped and removed $DIR"
