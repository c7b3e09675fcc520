#!/usr/bin/env bash
# Makes the e2e's test certificate authority, and a server certificate it signs for the host
# names the internet stand-in answers for (test harness only: the machines trust this CA the
# way machines behind a corporate TLS proxy trust the proxy's, through the system trust store
# that apt, curl and containerd all read).
#
# Usage: toolchain/test-ca.sh [NAME...]
# Output: $KC_CACHE/test-ca/ca.crt and ca.key (made once, valid 10 years); with NAMEs, also
#   $KC_CACHE/test-ca/server-HASH/tls.crt and tls.key, a certificate whose subject alternative
#   names are exactly the NAMEs (HASH names the set), and that folder's path on stdout.
# Keys are ECDSA P-256. A certificate that expires within 30 days is made again; a new CA
# makes every server certificate again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=toolchain/lib.sh
source "$here/lib.sh"

piece=test-ca
out=$KC_CACHE/test-ca
lock_piece "$piece"
umask 077
mkdir -p "$out"
month=$((30 * 24 * 3600))

for name in "$@"; do
  [[ $name =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "test CA: '$name' is not a lower-case DNS name"
done

# valid_for_a_month CERT: true when CERT exists and does not expire within 30 days.
valid_for_a_month() {
  [[ -s $1 ]] && openssl x509 -in "$1" -noout -checkend "$month" >/dev/null 2>&1
}

if ! is_built "$out" ca || ! valid_for_a_month "$out/ca.crt"; then
  rm -f "$out/.done"
  printf '%s\n' '[req]' 'distinguished_name = dn' 'x509_extensions = ca' '[dn]' '[ca]' \
    'basicConstraints = critical, CA:TRUE, pathlen:0' 'keyUsage = critical, keyCertSign, cRLSign' \
    'subjectKeyIdentifier = hash' >"$out/ca.cnf"
  run "$piece" openssl req -x509 -new -config "$out/ca.cnf" -newkey ec \
    -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$out/ca.key" -out "$out/ca.crt" \
    -days 3650 -subj "/O=kubeadm-cluster tests/CN=kubeadm-cluster e2e test CA" \
    -set_serial "0x$(openssl rand -hex 16)"
  chmod 0644 "$out/ca.crt"
  mark_built "$out" ca
fi
[[ $# -gt 0 ]] || exit 0

ca_hash=$(sha256sum <"$out/ca.crt" | cut -d' ' -f1)
names=$(printf '%s\n' "$@" | sort -u)
server=$out/server-$(sha256sum <<<"$names" | cut -c1-16)
stamp="$ca_hash $(tr '\n' ' ' <<<"$names")"
if ! is_built "$server" "$stamp" || ! valid_for_a_month "$server/tls.crt"; then
  rm -rf "$server"
  mkdir -p "$server"
  mapfile -t sans <<<"$names"
  sans=("${sans[@]/#/DNS:}")
  {
    printf '%s\n' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
      'extendedKeyUsage = serverAuth' 'authorityKeyIdentifier = keyid'
    (IFS=,; printf 'subjectAltName = %s\n' "${sans[*]}")
  } >"$server/ext.cnf"
  run "$piece" openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$server/tls.key" -out "$server/tls.csr" -subj "/CN=$(head -n1 <<<"$names")"
  run "$piece" openssl x509 -req -in "$server/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$server/ext.cnf" -out "$server/tls.crt"
  chmod 0644 "$server/tls.crt"
  rm -f "$server/tls.csr"
  mark_built "$server" "$stamp"
fi
printf '%s\n' "$server"
