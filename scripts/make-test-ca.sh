#!/usr/bin/env bash
# A test certificate authority and a broker certificate signed by it, for local and test setups only
# (production certificates come from the city's own CA):
#
#   scripts/make-test-ca.sh OUT_DIR [HOST ...]     e.g. scripts/make-test-ca.sh deploy/secrets/mosquitto/certs mosquitto
#
# writes OUT_DIR/ca.crt (give it to devices and services: SAFECITY_MQTT__TLS_CA_FILE), OUT_DIR/ca.key
# (keep it off the broker), OUT_DIR/server.crt and OUT_DIR/server.key for the broker, valid for the given
# host names plus localhost and 127.0.0.1.
set -euo pipefail
out=${1:?usage: make-test-ca.sh OUT_DIR [HOST ...]}
shift
mkdir -p "$out"
umask 077
san="DNS:localhost,IP:127.0.0.1"
for host in "$@"; do san="$san,DNS:$host"; done
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -subj "/CN=SafeCity Stream test CA" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=${1:-localhost}" \
    -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
openssl x509 -req -sha256 -days 825 -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -out "$out/server.crt" \
    -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" "$san") 2>/dev/null
rm -f "$out/server.csr" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/server.crt"
echo "test CA in $out: ca.crt, server.crt/server.key for $san"
