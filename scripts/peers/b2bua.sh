#!/usr/bin/env bash
# Copied into the callwarden repo from shared/peers/b2bua.sh (the tested peer kit); changes since
# are in git history.
# Sippy B2BUA (a real back-to-back user agent, pip package `sippy`) on 127.0.0.1:5060 between
# the SIPp UAC and UAS of calls.sh: every call is two SIP dialogs (UAC -> B2BUA and
# B2BUA -> UAS), with different Call-IDs, as behind an IP PBX. Media flows UAC <-> UAS directly.
#   b2bua.sh [-c calls.csv] [-d workdir] [-k]
# -k keeps the Call-ID on the second leg (Sippy's default); without it the second leg gets a
# new Call-ID (--hide_call_id=on), which is what most PBXs do.
# Writes workdir/sip.pcap (everything on lo: both legs and the RTP), workdir/b2bua.out
# (Sippy's stdout: every SIP message it sends/receives, and any exception) and workdir/calls/.
# UDP only (Sippy's SIP stack sends on UDP or WebSocket). Needs sipp, tcpdump, python3, ss;
# installs sippy into $SIPPY_VENV (default /tmp/cw-sippy-venv) when missing. Ports: B2BUA
# $B2B_PORT (5060), its command socket tcp $B2B_CLI_PORT (5099), UAC 5070, UAS $UAS_PORT (5080);
# it refuses to start when 5060/5099 are taken. Exits 0 only if every call succeeded on both
# SIPp sides and Sippy logged no exception.
# UAC_IP / UAS_IP (default 127.0.0.1) put the phones and the "trunk" on other loopback
# addresses, so the B2BUA's 127.0.0.1 is the only PBX address in the capture.
# Sippy options: --static_route=$UAS_IP:5080 (every call goes to the UAS),
# --pass_headers=X-Cw-Want,X-Cw-Ring-Ms (pass the UAC's per-call instructions on to the UAS;
#   not -h: Sippy 2.5 keeps -h names as typed but matches them against lower-cased names),
# --auth_enable=off --acct_enable=off (RADIUS auth/accounting are on by default),
# --b2bua_socket=tcp:127.0.0.1:5099 (its command socket; the default is /var/run/b2bua.sock;
#   Sippy knows only tcp: and unix:, any other string is taken as a unix socket path),
# --foreground=on --logfile (stays our child; stopped by its pid on exit).
# The scenarios are patched copies passed to calls.sh with SCENARIOS=...; see the comments
# at the sed lines below for why.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
need sipp tcpdump python3 ss

CSV="" WORK="" HIDE=on
while getopts "c:d:k" o; do
  case $o in c) CSV=$OPTARG ;; d) WORK=$OPTARG ;; k) HIDE=off ;; *) sed -n 2,22p "$0"; exit 2 ;; esac
done
VENV=${SIPPY_VENV:-/tmp/cw-sippy-venv}
if [ ! -x "$VENV/bin/b2bua" ]; then
  if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q sippy; }; then
    die "cannot install sippy into $VENV"
  fi
fi
WORK=${WORK:-$(mktemp -d /tmp/cw-b2bua.XXXXXX)}
mkdir -p "$WORK/scenarios"; WORK=$(realpath "$WORK")
UAS_PORT=${UAS_PORT:-5080} B2B_PORT=${B2B_PORT:-5060} B2B_CLI_PORT=${B2B_CLI_PORT:-5099}

# Sippy binds its SIP socket with SO_REUSEADDR, so a second B2BUA on the same port starts
# fine while the first one keeps receiving the traffic: refuse to start instead.
busy=$(ss -ulnpH "sport = :$B2B_PORT" 2>/dev/null; ss -tlnpH "sport = :$B2B_CLI_PORT" 2>/dev/null)
[ -z "$busy" ] || die "127.0.0.1:$B2B_PORT/udp or :$B2B_CLI_PORT/tcp is in use (stop it first): $busy"

# Patched copies of the scenarios:
# - SIPp's [transport] is "UDP" in upper case; Sippy keeps the Contact's transport= param
#   as written and its transaction layer only knows "udp" (case-sensitive), so every
#   in-dialog request it originates (the BYE to the UAS) failed with "newTransaction() to
#   unsupported transport: UDP" (printed in b2bua.out, the BYE was silently lost). Drop
#   ";transport=[transport]" from the Contacts: UDP is the default.
# - Sippy's Contact carries a display name, which SIPp's [next_url] copies into the request
#   line, so the UAC's in-dialog requests go to the B2BUA by address instead.
# - Sippy passes X- headers on with their names lower-cased after the first letter.
sed -e 's|;transport=\[transport\]>|>|' \
    -e 's|\[next_url\]|sip:[field1]@[remote_ip]:[remote_port]|' "$PEERS_DIR/scenarios/uac.xml" >"$WORK/scenarios/uac.xml"
sed -e 's|;transport=\[transport\]>|>|' \
    -e 's|header="X-Cw-Want:"|header="X-cw-want:"|' -e 's|header="X-Cw-Ring-Ms:"|header="X-cw-ring-ms:"|' \
    "$PEERS_DIR/scenarios/uas.xml" >"$WORK/scenarios/uas.xml"

"$VENV/bin/b2bua" --foreground=on --sip_address=127.0.0.1 --sip_port="$B2B_PORT" \
  --static_route="${UAS_IP:-127.0.0.1}:$UAS_PORT" --hide_call_id=$HIDE --pass_headers=X-Cw-Want,X-Cw-Ring-Ms \
  --auth_enable=off --acct_enable=off --b2bua_socket="tcp:127.0.0.1:$B2B_CLI_PORT" \
  --logfile="$WORK/b2bua.log" >"$WORK/b2bua.out" 2>&1 &
B2B_PID=$!; CW_PIDS+=("$B2B_PID")
for _ in $(seq 1 50); do
  ss -ulnpH "sport = :$B2B_PORT" 2>/dev/null | grep -q "pid=$B2B_PID," && break
  kill -0 "$B2B_PID" 2>/dev/null || die "b2bua exited: $(tail -5 "$WORK/b2bua.out")"
  sleep 0.1
done
ss -ulnpH "sport = :$B2B_PORT" 2>/dev/null | grep -q "pid=$B2B_PID," || die "b2bua did not bind 127.0.0.1:$B2B_PORT"
echo "sippy b2bua pid $B2B_PID on 127.0.0.1:$B2B_PORT -> ${UAS_IP:-127.0.0.1}:$UAS_PORT (hide_call_id=$HIDE)"

set +e
args=(-x "127.0.0.1:$B2B_PORT" -o "$WORK/sip.pcap" -d "$WORK/calls")
[ -n "$CSV" ] && args+=(-c "$CSV")
SCENARIOS="$WORK/scenarios" bash "$PEERS_DIR/calls.sh" "${args[@]}"
RC=$?
set -e
stop_pid "$B2B_PID"
# anything Sippy could not handle shows up as a traceback on its stdout
if grep -q "unhandled exception" "$WORK/b2bua.out"; then
  echo "warning: b2bua logged exceptions, see $WORK/b2bua.out" >&2
  [ "$RC" = 0 ] && RC=1
fi
echo "pcap=$WORK/sip.pcap rc=$RC"
exit "$RC"
