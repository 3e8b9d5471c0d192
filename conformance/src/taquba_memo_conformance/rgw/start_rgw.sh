#!/usr/bin/env bash
# A single-node Ceph cluster with an S3 gateway (RGW), its state in directory DIR.
#
# usage: start_rgw.sh DIR MON_PORT RGW_HOST RGW_PORT ACCESS_KEY SECRET_KEY MEMSTORE_BYTES
#
# One ceph-mon on 127.0.0.1:MON_PORT, one ceph-osd keeping its data in memory
# (memstore, capped at MEMSTORE_BYTES), one radosgw (beast) on RGW_HOST:RGW_PORT
# (127.0.0.1, or 0.0.0.0 inside a container whose port is published on the
# host's loopback only), and an S3 user with
# the given keys, created before the gateway answers its first request. Runs in
# the foreground until a daemon exits or it is signalled; the caller stops the
# whole process group and deletes the directory. Cluster auth is off (nothing
# but loopback can reach it); S3 requests are still signed and checked.
set -euo pipefail

mkdir -p "$1"
dir=$(cd "$1" && pwd)
mon_port=$2 rgw_host=$3 rgw_port=$4 access_key=$5 secret_key=$6 memstore_bytes=$7
conf=$dir/ceph.conf
fsid=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd" "$dir/rgw"

# Every setting below was found by failing without it (see the kit's README).
cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms mon client mode = crc
auth cluster required = none
auth service required = none
auth client required = none
run dir = $dir/run
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
[mon]
mon data = $dir/mon/\$cluster-\$id
paxos propose interval = 0.01
paxos min wait = 0.001
[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $memstore_bytes
[client.rgw]
# tcp_nodelay: without it every GET answer waits for the client's delayed ACK
# (measured: 44 ms a 1 KiB GET, 2.6 ms with it).
rgw frontends = beast endpoint=$rgw_host:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
CONF

step() { echo "start_rgw: $*"; }
# The caller signals the whole group. The daemons are killed outright: their
# state is thrown away, and memstore would first write all of it to disk.
# Waiting reaps them, which an init that never reaps would not.
stop_daemons() { kill -KILL $(jobs -p) 2>/dev/null || true; wait; }
trap 'trap - TERM INT; stop_daemons; exit 143' TERM INT
# A step that fails (set -e) ends the script: the daemons already started go with it.
trap stop_daemons EXIT

step "mon"
ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/keyring"
ceph-mon -c "$conf" -i a -f &

step "osd"
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_id=$(ceph -c "$conf" --connect-timeout 30 osd new "$osd_uuid")
mkdir -p "$dir/osd/ceph-$osd_id"
ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" 2>&1 | grep -v "^$" || true
ceph-osd -c "$conf" -i "$osd_id" -f &

step "s3 user"
radosgw-admin -c "$conf" user create --uid=taquba-memo --display-name=taquba-memo \
    --access-key="$access_key" --secret-key="$secret_key" >/dev/null

step "radosgw on $rgw_host:$rgw_port"
radosgw -c "$conf" -n client.rgw -f &

# The first daemon to exit ends the cluster.
status=0
wait -n || status=$?
step "a daemon exited with status $status; stopping the cluster"
stop_daemons
exit 1
