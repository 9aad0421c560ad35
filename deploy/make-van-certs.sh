#!/usr/bin/env bash
# Create the van CA and the broker, unit, tablet and console certificates (openssl, EC P-256).
#
#   deploy/make-van-certs.sh OUT_DIR [--units "van-dev-01 van-dev-02"] [--tablets "tablet-01"]
#                            [--consoles "console-01"] [--broker-san "DNS:van-broker,DNS:localhost,IP:127.0.0.1"]
#                            [--days 400] [--add]
#
# Each client certificate's CN is its MQTT identity (use_identity_as_username), and must be
# listed in the broker ACL (deploy/mosquitto/acl). Private keys are written 0600. The CA key
# (ca.key) signs nothing else: keep it off the van after provisioning. Refuses to overwrite
# an existing CA; with --add it uses the existing CA in OUT_DIR and issues only the
# certificates not there yet (a new tablet, a re-provisioned unit).
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
UNITS="van-dev-01 van-dev-02"; TABLETS="tablet-01"; CONSOLES="console-01"
SAN="DNS:van-broker,DNS:localhost,IP:127.0.0.1"; DAYS=400; ADD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --units) UNITS=$2; shift 2 ;;
    --tablets) TABLETS=$2; shift 2 ;;
    --consoles) CONSOLES=$2; shift 2 ;;
    --broker-san) SAN=$2; shift 2 ;;
    --days) DAYS=$2; shift 2 ;;
    --add) ADD=1; shift ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
for name in $UNITS $TABLETS $CONSOLES; do
  [[ "$name" =~ ^[a-z0-9][a-z0-9-]{1,62}$ ]] || { echo "bad identity '$name': use a-z, 0-9, -" >&2; exit 2; }
done

mkdir -p "$OUT"
umask 077
if [ -e "$OUT/ca.key" ] && [ "$ADD" = 0 ]; then
  echo "$OUT/ca.key exists: refusing to replace the van CA (--add issues missing certificates with it)" >&2; exit 1
fi
if [ "$ADD" = 1 ] && [ ! -e "$OUT/ca.key" ]; then
  echo "--add needs the van CA in $OUT (ca.crt, ca.key)" >&2; exit 1
fi

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

openssl_ext() {  # $1 = extendedKeyUsage, $2 = subjectAltName (may be empty)
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n'
  printf 'extendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$1"
  [ -z "$2" ] || printf 'subjectAltName=%s\n' "$2"
}

issue() {  # $1 = file stem, $2 = CN, $3 = extendedKeyUsage, $4 = SAN
  if [ "$ADD" = 1 ] && [ -e "$OUT/$1.crt" ]; then return 0; fi
  newkey "$OUT/$1.key"
  openssl req -new -key "$OUT/$1.key" -subj "/O=LFR van/CN=$2" -out "$OUT/$1.csr"
  openssl x509 -req -in "$OUT/$1.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
    -days "$DAYS" -sha256 -extfile <(openssl_ext "$3" "$4") -out "$OUT/$1.crt" 2>/dev/null
  rm -f "$OUT/$1.csr"
  chmod 600 "$OUT/$1.key"; chmod 644 "$OUT/$1.crt"
}

if [ "$ADD" = 0 ]; then
  newkey "$OUT/ca.key"
  openssl req -x509 -new -key "$OUT/ca.key" -sha256 -days "$DAYS" -subj "/O=LFR van/CN=LFR van CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$OUT/ca.crt"
  chmod 644 "$OUT/ca.crt"
fi

issue broker van-broker serverAuth "$SAN"
for name in $UNITS $TABLETS $CONSOLES; do
  issue "$name" "$name" clientAuth ""
done
rm -f "$OUT/ca.srl"
echo "van CA and certificates in $OUT: broker $(printf '%s ' $UNITS $TABLETS $CONSOLES)"
