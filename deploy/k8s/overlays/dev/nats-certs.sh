#!/bin/sh
# Makes the dev overlay's NATS certificates with openssl: a throwaway CA, the NATS servers' certificate
# (client port and cluster routes) and one client certificate per service. Production takes the same
# Secrets from cert-manager or its own PKI instead (docs/operations.md#security).
#
#   deploy/k8s/overlays/dev/nats-certs.sh OUT_DIR [NAMESPACE]
#
# writes OUT_DIR/{ca,nats,write-api,stream-gateway}.{crt,key} and prints the kubectl commands that turn
# them into the Secrets the manifests mount (nats-tls, write-api-nats-tls, stream-gateway-nats-tls, each
# with ca.crt, tls.crt and tls.key).
set -eu

out=${1:?usage: nats-certs.sh OUT_DIR [NAMESPACE]}
namespace=${2:-wizard-stream-dev}
days=${NATS_CERT_DAYS:-365}
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
  -subj "/CN=wizard-stream dev NATS CA" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# The servers' certificate serves clients and both ends of every route, so it needs clientAuth as well:
# a route certificate without it makes routes stop carrying messages without an error.
sans="DNS:nats,DNS:nats.$namespace,DNS:nats.$namespace.svc,DNS:*.nats-headless,DNS:*.nats-headless.$namespace,DNS:*.nats-headless.$namespace.svc,DNS:localhost,IP:127.0.0.1"
for name in nats write-api stream-gateway; do
  if [ "$name" = nats ]; then
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans" >"$name.ext"
  else
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >"$name.ext"
  fi
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
rm -f ca.srl
chmod 600 ./*.key

for secret in nats-tls:nats write-api-nats-tls:write-api stream-gateway-nats-tls:stream-gateway; do
  echo "kubectl -n $namespace create secret generic ${secret%%:*} --from-file=ca.crt=$out/ca.crt --from-file=tls.crt=$out/${secret#*:}.crt --from-file=tls.key=$out/${secret#*:}.key"
done
