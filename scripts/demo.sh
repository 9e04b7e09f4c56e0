#!/usr/bin/env bash
# devtel demo: a district office's copiers, simulated from recordings of real devices, polled by a
# collector and aggregated per administrative unit by the gateway.
#
# Starts (all on 127.0.0.1, stopped again with Ctrl-C):
#   - devtel's SNMP simulator serving ../shared/corpus/snmprec (one agent per recorded device)
#   - Mosquitto                                (MQTT broker; installed with apt-get if missing)
#   - devtel-gateway                           (HTTP API on http://127.0.0.1:${DEVTEL_HTTP_PORT:-8080})
#   - devtel-collector                         (polls every 10 s)
# Builds devtel in release mode first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HTTP_PORT="${DEVTEL_HTTP_PORT:-8080}"
MQTT_PORT="${DEVTEL_MQTT_PORT:-18830}"
SNMP_PORT="${DEVTEL_SNMP_PORT:-16100}"
CORPUS="${DEVTEL_CORPUS:-$ROOT/../shared/corpus}"

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "demo: installing mosquitto"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
fi
[ -d "$CORPUS/snmprec" ] || { echo "error: $CORPUS/snmprec not found (set DEVTEL_CORPUS)" >&2; exit 1; }
# DEVTEL_PROFILE=debug uses (and builds) the debug binaries instead.
PROFILE="${DEVTEL_PROFILE:-release}"
echo "demo: building devtel ($PROFILE)"
if [ "$PROFILE" = release ]; then cargo build --release --locked --bins -q; else cargo build --locked --bins -q; fi
BIN="$ROOT/target/$PROFILE"

RUN="$ROOT/target/demo"
rm -rf "$RUN"; mkdir -p "$RUN"
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

"$BIN/devtel-collector" simulate --recordings "$CORPUS/snmprec" --listen "127.0.0.1:$SNMP_PORT" \
    --advance-counters 2 \
    2> "$RUN/simulator.log" & pids+=($!)

cat > "$RUN/gateway.toml" <<TOML
broker = "mqtt://127.0.0.1:$MQTT_PORT"
client_id = "devtel-demo-gateway"
http_listen = "127.0.0.1:$HTTP_PORT"

[store]
path = "$RUN/gateway.sqlite"

[aggregation]
timezone = "Europe/Berlin"
sla_target_percent = 99.9

[[units]]
id = "bezirksamt"
name = "Bezirksamt (demo)"

[[units]]
id = "bezirksamt.buergeramt"
name = "Bürgeramt"
parent = "bezirksamt"
cost_centre = "2100"

[[units]]
id = "bezirksamt.jugendamt"
name = "Jugendamt"
parent = "bezirksamt"
cost_centre = "5000"

[[units]]
id = "bezirksamt.jugendamt.team-1"
name = "Jugendamt Team 1"
parent = "bezirksamt.jugendamt"
cost_centre = "5010"

[[units]]
id = "bezirksamt.it"
name = "IT-Service"
parent = "bezirksamt"
cost_centre = "9100"

[[prices]]
mono = 0.012
colour = 0.085

[[prices]]
model = "SHARP MX-3570N"
mono = 0.009
colour = 0.061
monthly_fee = 25.00
TOML

# Every recorded copier, spread over three administrative units of a district office, plus an
# analogue phone adapter and two access switches whose ports are dock seats.
{
    echo "site = \"rathaus-demo\""
    echo "broker = \"mqtt://127.0.0.1:$MQTT_PORT\""
    echo "poll_interval = \"10s\""
    printf '[spool]\ndir = "%s/spool"\n' "$RUN"
    i=0
    units=(bezirksamt.buergeramt bezirksamt.jugendamt.team-1 bezirksamt.it)
    for rec in ricoh_mpc3002 sharp konica_c250i konica utax brother canonprinter_lbp epson \
               fujifilmprinter_c7580 jetdirect jetdirect_m130nw okilan_9450g samsungprinter_m4080fx; do
        [ -f "$CORPUS/snmprec/$rec.snmprec" ] || continue
        unit="${units[$((i % 3))]}"; i=$((i + 1))
        printf '\n[[devices]]\nid = "%s"\naddress = "127.0.0.1"\nport = %s\ncommunity = "%s"\nunit = "%s"\n' \
            "${rec//_/-}" "$SNMP_PORT" "$rec" "$unit"
    done
    # Phones and the desk-sharing floor's access switches (dock seats).
    printf '\n[[devices]]\nid = "ata-foyer"\nkind = "phone"\naddress = "127.0.0.1"\nport = %s\ncommunity = "grandstream-ht_ht814v2"\nunit = "bezirksamt.buergeramt"\n' "$SNMP_PORT"
    printf '\n[[devices]]\nid = "switch-desks-3og"\nkind = "dock"\naddress = "127.0.0.1"\nport = %s\ncommunity = "tplink_sg2008"\nunit = "bezirksamt.jugendamt.team-1"\nseats = ["2", "3", "4", "5", "6", "7", "8"]\n' "$SNMP_PORT"
    printf '\n[[devices]]\nid = "switch-desks-2og"\nkind = "dock"\naddress = "127.0.0.1"\nport = %s\ncommunity = "procurve"\nunit = "bezirksamt.it"\n' "$SNMP_PORT"
} > "$RUN/collector.toml"

# Wait until the broker accepts connections (the simulator answers as soon as it has started).
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.1; done

"$BIN/devtel-gateway" run --config "$RUN/gateway.toml" 2> "$RUN/gateway.log" & pids+=($!)
"$BIN/devtel-collector" run --config "$RUN/collector.toml" 2> "$RUN/collector.log" & pids+=($!)

cat <<MSG

devtel demo is running (logs in $RUN/).
  Dashboard:        http://127.0.0.1:$HTTP_PORT/
  Monthly report:   http://127.0.0.1:$HTTP_PORT/reports/monthly  (CSV: /api/reports/monthly?format=csv)
  Units:            curl -s http://127.0.0.1:$HTTP_PORT/api/units
  One unit:         curl -s http://127.0.0.1:$HTTP_PORT/api/units/bezirksamt.jugendamt
  Consumption:      curl -s 'http://127.0.0.1:$HTTP_PORT/api/consumption?unit=bezirksamt&by=day'
  Devices:          curl -s http://127.0.0.1:$HTTP_PORT/api/devices?kind=dock
  Health, metrics:  curl -s http://127.0.0.1:$HTTP_PORT/healthz; curl -s http://127.0.0.1:$HTTP_PORT/metrics
  As an integrator: mosquitto_sub -p $MQTT_PORT -t 'devtel/v1/units/+' -t 'devtel/v1/devices/+' -v
Press Ctrl-C to stop.
MSG
sleep 4
if command -v curl >/dev/null; then
    echo; echo "GET /api/units:"; curl -s "http://127.0.0.1:$HTTP_PORT/api/units"; echo
fi
wait
