#!/usr/bin/env bash
# Calls through a media relay: Debian's rtpengine (userspace forwarding, no kernel module)
# driven by Kamailio's rtpengine module, between the SIPp UAC and UAS of calls.sh. Every
# call's RTP crosses lo twice (UAC <-> rtpengine, rtpengine <-> UAS), on different ports,
# as behind a PBX or SBC that anchors media. Written for callwarden.
#   rtpengine.sh [-c calls.csv] [-d workdir]
# Writes workdir/sip.pcap (everything on 127.0.0.0/8: SIP on both hops and both RTP copies).
# UAC on $UAC_IP (default 127.0.0.2), UAS on $UAS_IP (default 127.0.0.3), Kamailio and
# rtpengine on 127.0.0.1 (ng control 127.0.0.1:2223, media ports 40000-40199). Both run in
# the foreground with pid files and are stopped by those pids. Needs kamailio, rtpengine
# (package rtpengine-daemon), sipp, tcpdump.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
need kamailio rtpengine sipp tcpdump

CSV="" WORK=""
while getopts "c:d:" o; do
  case $o in c) CSV=$OPTARG ;; d) WORK=$OPTARG ;; *) sed -n 2,11p "$0"; exit 2 ;; esac
done
export UAC_IP=${UAC_IP:-127.0.0.2} UAS_IP=${UAS_IP:-127.0.0.3}
WORK=${WORK:-$(mktemp -d /tmp/cw-rtpe.XXXXXX)}
mkdir -p "$WORK"; WORK=$(realpath "$WORK")

rtpengine --foreground --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:2223 \
  --port-min=40000 --port-max=40199 --log-stderr --log-level=5 --pidfile="$WORK/rtpengine.pid" \
  >"$WORK/rtpengine.log" 2>&1 &
RTPE_PID=$!; CW_PIDS+=("$RTPE_PID")
for _ in $(seq 1 50); do
  ss -ulnH "sport = :2223" 2>/dev/null | grep -q 127.0.0.1 && break
  kill -0 "$RTPE_PID" 2>/dev/null || die "rtpengine exited: $(tail -5 "$WORK/rtpengine.log")"
  sleep 0.1
done
echo "rtpengine pid $RTPE_PID (ng 127.0.0.1:2223)"

sed "s/UAS_IP/$UAS_IP/" "$PEERS_DIR/kamailio/kamailio-rtpengine.cfg" >"$WORK/kamailio.cfg"
start_kamailio "$WORK/kamailio.cfg" "$WORK"

set +e
args=(-x 127.0.0.1:5060 -o "$WORK/sip.pcap" -d "$WORK/calls")
[ -n "$CSV" ] && args+=(-c "$CSV")
bash "$PEERS_DIR/calls.sh" "${args[@]}"
CALLS_RC=$?
set -e
stop_pid "$(cat "$WORK/kamailio.pid")" TERM
stop_pid "$RTPE_PID" TERM
echo "pcap=$WORK/sip.pcap rc=$CALLS_RC"
exit $CALLS_RC
