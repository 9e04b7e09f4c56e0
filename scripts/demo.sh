#!/usr/bin/env bash
# devtel demo: a district office's copiers, simulated from recordings of real devices, polled by a
# collector and aggregated per administrative unit by the gateway.
#
# Starts (all on 127.0.0.1, stopped again with Ctrl-C):
#   - snmpsim serving ../shared/corpus/snmprec  (one SNMP agent per recorded device)
#   - Mosquitto                                (MQTT broker)
#   - devtel-gateway                           (HTTP API on http://127.0.0.1:${DEVTEL_HTTP_PORT:-8080})
#   - devtel-collector                         (polls every 10 s)
# Installs what it needs first (same script as the tests), and builds devtel in release mode.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HTTP_PORT="${DEVTEL_HTTP_PORT:-8080}"
MQTT_PORT="${DEVTEL_MQTT_PORT:-18830}"
SNMP_PORT="${DEVTEL_SNMP_PORT:-16100}"
CORPUS="${DEVTEL_CORPUS:-$ROOT/../shared/corpus}"

bash scripts/setup-test-env.sh
[ -d "$CORPUS/snmprec" ] || { echo "error: $CORPUS/snmprec not found (set DEVTEL_CORPUS)" >&2; exit 1; }
echo "demo: building devtel (release)"
cargo build --release --locked --bins -q

RUN="$ROOT/target/demo"
rm -rf "$RUN"; mkdir -p "$RUN/snmpsim-cache"
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo; echo "demo: stopping"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' "$MQTT_PORT" > "$RUN/mosquitto.conf"
"$MOSQUITTO" -c "$RUN/mosquitto.conf" 2> "$RUN/mosquitto.log" & pids+=($!)

SNMPSIM_ALLOW_ROOT=true .venv/bin/snmpsim-command-responder \
    --data-dir="$CORPUS/snmprec" --agent-udpv4-endpoint="127.0.0.1:$SNMP_PORT" \
    --cache-dir="$RUN/snmpsim-cache" --logging-method=null > "$RUN/snmpsim.log" 2>&1 & pids+=($!)

cat > "$RUN/gateway.toml" <<TOML
broker = "mqtt://127.0.0.1:$MQTT_PORT"
client_id = "devtel-demo-gateway"
http_listen = "127.0.0.1:$HTTP_PORT"
TOML

# Every recorded copier, spread over three administrative units of a district office.
{
    echo "site = \"rathaus-demo\""
    echo "broker = \"mqtt://127.0.0.1:$MQTT_PORT\""
    echo "poll_interval = \"10s\""
    i=0
    units=(bezirksamt.buergeramt bezirksamt.jugendamt.team-1 bezirksamt.it)
    for rec in ricoh_mpc3002 sharp konica_c250i konica utax brother canonprinter_lbp epson \
               fujifilmprinter_c7580 jetdirect jetdirect_m130nw okilan_9450g samsungprinter_m4080fx; do
        [ -f "$CORPUS/snmprec/$rec.snmprec" ] || continue
        unit="${units[$((i % 3))]}"; i=$((i + 1))
        printf '\n[[devices]]\nid = "%s"\naddress = "127.0.0.1"\nport = %s\ncommunity = "%s"\nunit = "%s"\n' \
            "${rec//_/-}" "$SNMP_PORT" "$rec" "$unit"
    done
} > "$RUN/collector.toml"

# Wait until the broker accepts connections and the simulated devices answer.
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 60); do
    snmpget -v2c -c ricoh_mpc3002 -t 0.5 -r 0 "127.0.0.1:$SNMP_PORT" 1.3.6.1.2.1.1.1.0 >/dev/null 2>&1 && break
    sleep 0.5
done

target/release/devtel-gateway run --config "$RUN/gateway.toml" 2> "$RUN/gateway.log" & pids+=($!)
target/release/devtel-collector run --config "$RUN/collector.toml" 2> "$RUN/collector.log" & pids+=($!)

cat <<MSG

devtel demo is running (logs in $RUN/).
  Units:            curl -s http://127.0.0.1:$HTTP_PORT/api/units
  One unit:         curl -s http://127.0.0.1:$HTTP_PORT/api/units/bezirksamt.it
  Health:           curl -s http://127.0.0.1:$HTTP_PORT/healthz
  As an integrator: mosquitto_sub -p $MQTT_PORT -t 'devtel/v1/units/+' -v
Press Ctrl-C to stop.
MSG
sleep 4
if command -v curl >/dev/null; then
    echo; echo "GET /api/units:"; curl -s "http://127.0.0.1:$HTTP_PORT/api/units"; echo
fi
wait
