#!/usr/bin/env bash
# Installs what devtel's tests need on a Debian machine, idempotently:
#   - Mosquitto (the real MQTT broker the end-to-end tests start; with mosquitto_passwd),
#   - openssl (the TLS test generates its CA and broker certificate),
#   - net-snmp command-line tools (snmpget/snmpwalk, handy for debugging),
#   - net-snmp's snmpd (the real SNMPv3 agent the v3 tests start; its system service is
#     stopped and disabled, the tests start their own on a free port),
#   - Chromium and ChromeDriver (the dashboard's tests run in a real headless browser),
#   - Node.js and npm if missing, and playwright-core + axe-core (tests/browser/package-lock.json)
#     in the project-local tests/browser/node_modules (ignored by git),
#   - snmpsim + pysmi in a project-local venv (.venv/, ignored by git), which
#     serves the recorded device walks in ../shared/corpus/snmprec,
#   - dpkg-deb, systemd-analyze and strip for the Debian packages' test,
#   - PostgreSQL (the store replicas share; the tests start their own server in a temporary
#     folder on a free port, and the package's system cluster is stopped and disabled).
# Re-running it is cheap: every step checks first and skips what is present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v snmpget >/dev/null 2>&1 || need_apt+=(snmp)
[ -x /usr/sbin/snmpd ] || need_apt+=(snmpd)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The packaging test: dpkg-deb builds the .debs, systemd-analyze verifies their units.
command -v dpkg-deb >/dev/null 2>&1 || need_apt+=(dpkg)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v strip >/dev/null 2>&1 || need_apt+=(binutils)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # The package starts a system snmpd on udp/161; the tests need none of it.
    if [[ " ${need_apt[*]} " == *" snmpd "* ]] && command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now snmpd >/dev/null 2>&1 || true
    fi
    # Likewise the system PostgreSQL cluster on port 5432.
    if [[ " ${need_apt[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi

if [ ! -x "$VENV/bin/snmpsim-command-responder" ]; then
    echo "setup: creating $VENV with snmpsim and pysmi"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'snmpsim==1.2.*' pysmi
fi

if [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ] || [ ! -d "$ROOT/tests/browser/node_modules/axe-core" ]; then
    echo "setup: installing the browser test's npm packages into tests/browser/node_modules"
    (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "setup: mosquitto at $(command -v mosquitto || echo /usr/sbin/mosquitto), snmpsim at $VENV/bin/snmpsim-command-responder"
