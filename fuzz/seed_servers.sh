#!/usr/bin/env bash
# Seeds the server-side fuzz targets (http_request, ocsp_request, ndes_config, ca_config,
# policy_config) from
# the repository's test vectors and sample files. Run from the workspace root after
# `cargo run -p scep --example fuzz_seeds` (http_request reuses the `request` seeds as bodies).
set -euo pipefail
out=fuzz/corpus
mkdir -p "$out"/{http_request,ocsp_request,ndes_config,ca_config,policy_config}
seed() { # target, then the bytes on stdin; named by content like libFuzzer's own inputs
    local data
    data=$(mktemp)
    cat > "$data"
    mv "$data" "$out/$1/$(sha1sum < "$data" | cut -c1-40)"
}

# http_request: "METHOD target\nbody".
paths=(/certsrv/mscep/mscep.dll /certsrv/mscep/mscep.dll/pkiclient.exe /cgi-bin/pkiclient.exe /scep)
for p in "${paths[@]}"; do
    for op in GetCACaps GetCACert GetNextCACert 'GetCACert&message=CAIdentifier' PKIOperation Foo; do
        printf 'GET %s?operation=%s\n' "$p" "$op" | seed http_request
    done
done
for q in '' 'operation=' 'operation=GetCACaps&operation=GetCACert' 'operation=Get%43ACaps' \
    'operation=PKIOperation&message=' 'operation=PKIOperation&message=%zz' \
    'operation=PKIOperation&message=!!!!' 'message=AAAA'; do
    printf 'GET /scep?%s\n' "$q" | seed http_request
done
for m in HEAD PUT DELETE OPTIONS; do printf '%s /scep?operation=GetCACaps\n' "$m" | seed http_request; done
for p in / /healthz /metrics /admin/v1/pending /certsrv/mscep_admin/ /nope; do
    printf 'GET %s\n' "$p" | seed http_request
done
for der in scep/testdata/micromdm/pkcsreq.der scep/testdata/micromdm/renewalreq.der; do
    { printf 'POST /scep?operation=PKIOperation\n'; cat "$der"; } | seed http_request
    { printf 'GET /cgi-bin/pkiclient.exe?operation=PKIOperation&message='
      base64 -w0 "$der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g'; printf '\n'; } | seed http_request
    { printf 'GET /scep?operation=PKIOperation&message='; base64 -w64 "$der" | tr '\n' ' '; printf '\n'; } \
        | seed http_request
done
for f in "$out"/request/*; do
    [ "$(stat -c %s "$f")" -le 8192 ] || continue
    { printf 'POST /certsrv/mscep/mscep.dll/pkiclient.exe?operation=PKIOperation\n'; cat "$f"; } \
        | seed http_request
done

# ocsp_request: DER requests naming the fixed issuer (testdata/fuzz) and base64 of them.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
issuing=ca-mock/testdata/fuzz/issuing.pem
for args in "-serial 0x0102" "-serial 0x0102 -no_nonce" "-serial 1 -serial 2 -serial 3" \
    "-sha256 -serial 0x7f" "-sha384 -serial 0x00ff" "-issuer ca-mock/testdata/fuzz/root.pem -serial 5"; do
    # shellcheck disable=SC2086
    openssl ocsp -issuer "$issuing" $args -reqout "$tmp/req.der" > /dev/null
    seed ocsp_request < "$tmp/req.der"
    base64 -w0 "$tmp/req.der" | seed ocsp_request
    base64 -w0 "$tmp/req.der" | tr '+' ' ' | seed ocsp_request
done
openssl ocsp -issuer "$issuing" -cert "$issuing" -reqout "$tmp/req.der" > /dev/null
seed ocsp_request < "$tmp/req.der"
printf '' | seed ocsp_request
printf '\x30\x00' | seed ocsp_request

# ndes_config: the sample and its variants.
sample=ndes-proxy/ndes-proxy.sample.toml
seed ndes_config < "$sample"
sed 's/^max_connections = .*/max_connections = 0/' "$sample" | seed ndes_config
sed 's/^strict_algorithms = .*/strict_algorithms = true/' "$sample" | seed ndes_config
{ cat "$sample"; printf '\n[mscep_admin]\ntemplate = "IPSECIntermediateOffline"\n'; } | seed ndes_config
{ cat "$sample"; printf '\nunknown_key = 1\n'; } | seed ndes_config

# ca_config: the sample config and the templates.
seed ca_config < ca-mock/config/ca-mock.toml
for t in ca-mock/config/templates/*.toml; do seed ca_config < "$t"; done
sed 's/^validity_hours = .*/validity_hours = 9223372036854775807/' ca-mock/config/ca-mock.toml \
    | seed ca_config

# policy_config: the sample and its variants (PostgreSQL store, out-of-range outbox timings).
sample=policy-module/policy-module.sample.toml
seed policy_config < "$sample"
sed 's/^sqlite = .*/postgres_url_file = "secrets\/policy-postgres.url"/' "$sample" | seed policy_config
sed 's/^lease_secs = .*/lease_secs = -1/' "$sample" | seed policy_config
sed 's/^retry_max_secs = .*/retry_max_secs = 9223372036854775807/' "$sample" | seed policy_config
sed 's/^challenges_per_minute = .*/challenges_per_minute = 0/' "$sample" | seed policy_config
{ cat "$sample"; printf '
unknown_key = 1
'; } | seed policy_config
