#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `cluster` tests and for trying the slurm profile:
#   scripts/cluster/start_slurm.sh            # installs what is missing (Debian, as root), starts, waits for idle
#   scripts/cluster/stop_slurm.sh
# Everything (config, munge key and socket, spool, logs, pids) lives under ISOFLOP_SLURM_DIR, so a stop and a
# start give a clean cluster; the one thing outside it is the symlink /etc/slurm/slurm.conf (see below). No systemd: the daemons run in the foreground
# (-D / --foreground) under setsid with stdio detached, or a CI step that started them never sees EOF.
# The node has `nproc` CPUs, 85% of the memory, and ISOFLOP_SLURM_GPUS fake GPUs: GRES bound to character
# devices with /dev/null's numbers, so GPU requests are scheduled and tested without a GPU (a job on a real
# CUDA machine would get a real one from a real cluster's gres.conf instead).
set -euo pipefail

DIR=${ISOFLOP_SLURM_DIR:-/tmp/isoflop-slurm}
GPUS=${ISOFLOP_SLURM_GPUS:-2}
CTLD_PORT=${ISOFLOP_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${ISOFLOP_SLURMD_PORT:-6818}
PARTITION=${ISOFLOP_SLURM_PARTITION:-isoflop}
export SLURM_CONF=$DIR/slurm.conf

# exit 2: cannot run here (the cluster tests skip, saying so); any other failure is a failure
[[ $(id -u) == 0 ]] || { echo "start_slurm: needs root (it installs packages, creates device files, runs slurmd as root and links /etc/slurm/slurm.conf)" >&2; exit 2; }
missing=()
for tool in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || { echo "start_slurm: missing ${missing[*]} and no apt-get to install them" >&2; exit 2; }
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@"; }
    apt_install "${missing[@]}" >"${TMPDIR:-/tmp}/isoflop-slurm-apt.log" 2>&1 \
        || { apt-get -o DPkg::Lock::Timeout=600 update -q && apt_install "${missing[@]}"; } >>"${TMPDIR:-/tmp}/isoflop-slurm-apt.log" 2>&1 \
        || { echo "start_slurm: apt-get could not install ${missing[*]} (see ${TMPDIR:-/tmp}/isoflop-slurm-apt.log)" >&2; exit 2; }
fi

# The slurm commands inside a job find the cluster at Debian's default path: the executor plugin's jobstep
# drops SLURM_* variables (SLURM_CONF included) before its inner srun. So /etc/slurm/slurm.conf is a symlink
# to this cluster's config; a real config there is never touched, nor another running isoflop cluster's.
ETC_CONF=/etc/slurm/slurm.conf
if [[ -e $ETC_CONF && ! -L $ETC_CONF ]]; then
    echo "start_slurm: $ETC_CONF is a real SLURM config; not replacing it" >&2; exit 1
fi
if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") != "$SLURM_CONF" ]]; then
    other=$(dirname "$(readlink "$ETC_CONF")")
    if kill -0 "$(cat "$other/slurmctld.pid" 2>/dev/null)" 2>/dev/null; then
        echo "start_slurm: another cluster runs from $other; stop it first (ISOFLOP_SLURM_DIR=$other $(dirname "$0")/stop_slurm.sh)" >&2
        exit 1
    fi
fi

if [[ -f $DIR/slurmctld.pid ]] && sinfo -h >/dev/null 2>&1; then
    echo "start_slurm: already running in $DIR"
    exit 0
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{munge,spool/ctld,spool/d,log,gpus}
chmod 755 "$DIR"

# munge: our own key and socket (AuthInfo below tells every slurm command where the socket is)
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$DIR/munge"
chmod 400 "$DIR/munge/munge.key"
setsid nohup munged --foreground --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munge.seed" --log-file="$DIR/log/munged.log" \
    </dev/null >"$DIR/log/munged.out" 2>&1 &
echo $! >"$DIR/munged.pid"
for _ in $(seq 100); do [[ -S $DIR/munge/munge.socket ]] && break; sleep 0.1; done

for i in $(seq 0 $((GPUS - 1))); do mknod "$DIR/gpus/gpu$i" c 1 3; done  # /dev/null's major:minor
HOST=$(hostname -s)
CPUS=$(nproc)
MEMORY_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.85)}' /proc/meminfo)
GRES_NODE="" GRES_TYPES=""
if ((GPUS > 0)); then
    GRES_NODE="Gres=gpu:$GPUS" GRES_TYPES="GresTypes=gpu"
    echo "NodeName=$HOST Name=gpu File=$DIR/gpus/gpu[0-$((GPUS - 1))]" >"$DIR/gres.conf"
else
    : >"$DIR/gres.conf"
fi
cat >"$SLURM_CONF" <<CONF
ClusterName=isoflop
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/spool/slurmctld.daemon.pid
SlurmdPidFile=$DIR/spool/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups here: track processes by parent pid, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$GRES_TYPES
# without slurmdbd there is no sacct history: keep finished jobs visible to squeue for an hour (the executor
# plugin polls with squeue), and log every finished job (id, name, state) to a text file
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
JobAcctGatherType=jobacct_gather/none
DefMemPerCPU=1000
# a job past its time limit gets SIGTERM, then SIGKILL 5 s later
KillWait=5
OverTimeLimit=0
InactiveLimit=0
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB $GRES_NODE State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" "$ETC_CONF"

setsid nohup slurmctld -D -i -f "$SLURM_CONF" </dev/null >"$DIR/log/slurmctld.out" 2>&1 &
echo $! >"$DIR/slurmctld.pid"
setsid nohup slurmd -D -f "$SLURM_CONF" </dev/null >"$DIR/log/slurmd.out" 2>&1 &
echo $! >"$DIR/slurmd.pid"

for _ in $(seq 120); do
    state=$(sinfo -h -N -o %t 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.5
done
if [[ $state != idle ]]; then
    echo "start_slurm: the node is '${state:-unreachable}', not idle, after 60 s; logs in $DIR/log:" >&2
    tail -n 20 "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log "$DIR"/log/*.out >&2 || true
    exit 1
fi
echo "start_slurm: node $HOST idle ($CPUS CPUs, $MEMORY_MB MB, $GPUS fake GPUs) in partition $PARTITION, config $ETC_CONF -> $SLURM_CONF"
