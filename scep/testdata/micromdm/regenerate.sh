#!/usr/bin/env bash
# Regenerate the micromdm known-answer vectors in this directory from a fresh live exchange:
# micromdm scepclient enrolls, then renews, against micromdm scepserver on 127.0.0.1
# (peers/capture-vectors.sh), then the curated files are copied here and checked with openssl.
#   scep/testdata/micromdm/regenerate.sh [--keep]   (needs root: the peer scripts use unshare -n)
# Every file is replaced: new keys, nonces, transactionID, challenge and dates. Tests that pin
# values from these files must be updated with them. capture-info.txt records the run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PEERS="$(cd "$HERE/../../../peers" && pwd)"
keep="${1:-}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scep-vectors.XXXXXX")"
[ "$keep" = "--keep" ] || trap 'rm -rf "$WORK"' EXIT

"$PEERS/setup.sh"
"$PEERS/capture-vectors.sh" "$WORK/cap"
C="$WORK/cap"
X="$C/exchanges"

# The exchange files are numbered in request order; pick each by operation and position.
nth() { { ls "$X" | grep -E "^[0-9]+-$1\.meta\.txt$" || true; } | sed -n "${2}p" | sed 's/\.meta\.txt$//'; }
cacert="$(nth GetCACert 1)"; caps="$(nth GetCACaps 1)"
pkcsreq="$(nth PKIOperation 1)"; renewal="$(nth PKIOperation 2)"
for v in cacert caps pkcsreq renewal; do
    [ -n "${!v}" ] || { echo "regenerate: no $v exchange captured in $X" >&2; exit 1; }
done

rm -f "$HERE"/*.der "$HERE"/*.pem "$HERE"/*.txt
cp "$X/$cacert.response.bin" "$HERE/getcacert.der"
cp "$X/$caps.response.bin" "$HERE/getcacaps.txt"
cp "$X/$pkcsreq.request.der" "$HERE/pkcsreq.der"
cp "$X/$pkcsreq.response.bin" "$HERE/pkcsreq-certrep.der"
cp "$X/$renewal.request.der" "$HERE/renewalreq.der"
cp "$X/$renewal.response.bin" "$HERE/renewalreq-certrep.der"
cp "$C/server/depot/ca.pem" "$HERE/ca.pem"
# scepserver keeps its key as legacy-encrypted PKCS#1 (password in capass, usually empty);
# a throwaway lab key, so it is committed unencrypted as PKCS#8.
openssl pkey -in "$C/server/depot/ca.key" -passin "pass:$(cat "$C/server/capass")" -out "$HERE/ca.key.pem"
cp "$C/client/enroll/key.pem" "$HERE/client.key.pem"
cp "$C/client/enroll/csr.pem" "$HERE/client.csr.pem"
cp "$C/client/enroll/cert.pem" "$HERE/client.cert.pem"
cp "$C/client/renew/cert.pem" "$HERE/client-renewed.cert.pem"
# The self-signed certificate scepclient signed its PKCSReq with (the CertRep is encrypted to it).
openssl pkcs7 -inform DER -in "$HERE/pkcsreq.der" -print_certs | openssl x509 -out "$HERE/client-signer.cert.pem"
chmod 644 "$HERE"/*.der "$HERE"/*.pem "$HERE"/*.txt

# The checks the README documents; any failure aborts.
L=(-provider legacy -provider default)
V="$WORK/check"; mkdir -p "$V"
cd "$HERE"
at="$(openssl x509 -in client.cert.pem -noout -startdate | cut -d= -f2)"
at="$(( $(date -d "$at" +%s) + 60 ))"
openssl cms -verify -noverify -binary -inform DER -in pkcsreq.der -out "$V/pkcsreq.env.der"
openssl cms -decrypt -binary -inform DER -in "$V/pkcsreq.env.der" -recip ca.pem -inkey ca.key.pem "${L[@]}" -out "$V/pkcsreq.csr.der"
openssl req -in client.csr.pem -outform DER | cmp - "$V/pkcsreq.csr.der"
openssl cms -verify -binary -inform DER -in renewalreq.der -CAfile ca.pem -purpose any -attime "$at" -out "$V/renewal.env.der"
openssl cms -decrypt -binary -inform DER -in "$V/renewal.env.der" -recip ca.pem -inkey ca.key.pem "${L[@]}" -out "$V/renewal.csr.der"
cmp "$V/renewal.csr.der" "$V/pkcsreq.csr.der"
for pair in pkcsreq-certrep:client.cert.pem renewalreq-certrep:client-renewed.cert.pem; do
    rep="${pair%%:*}"; cert="${pair#*:}"
    openssl cms -verify -binary -inform DER -in "$rep.der" -CAfile ca.pem -purpose any -attime "$at" -out "$V/$rep.env.der"
    openssl cms -decrypt -binary -inform DER -in "$V/$rep.env.der" -inkey client.key.pem "${L[@]}" -out "$V/$rep.p7.der"
    openssl pkcs7 -inform DER -in "$V/$rep.p7.der" -print_certs | openssl x509 -outform DER | cmp - <(openssl x509 -in "$cert" -outform DER)
done
openssl x509 -inform DER -in getcacert.der -outform DER | cmp - <(openssl x509 -in ca.pem -outform DER)

{
    echo "# Written by regenerate.sh; facts of the capture the files in this directory come from."
    echo "captured: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "scep (micromdm) package: $(dpkg-query -W -f='${Version}' scep)"
    echo "openssl: $(openssl version)"
    echo "challenge: $(openssl req -in client.csr.pem -noout -text | sed -n 's/.*challengePassword *:\(.*\)$/\1/p')"
    for f in pkcsreq pkcsreq-certrep renewalreq renewalreq-certrep; do
        echo "$f.der: $(openssl cms -cmsout -print -inform DER -in "$f.der" | grep -A2 'undefined (2.16.840.1.113733.1.9.[237])' | grep PRINTABLESTRING | sed 's/^ *PRINTABLESTRING://' | tr '\n' ' ')"
    done
    echo "exchanges (request -> status, response content type):"
    for m in "$X"/*.meta.txt; do
        echo "  $(sed -n 1p "$m") -> $(sed -n 's/^status: //p' "$m"), $(sed -n 's/^response-content-type: //p' "$m")"
    done
} > capture-info.txt
echo "regenerate: vectors written to scep/testdata/micromdm and checked with openssl"
