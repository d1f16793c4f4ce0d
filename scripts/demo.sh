#!/usr/bin/env bash
# calseg end to end on one machine, as root: a local etcd (TLS, client-certificate auth, auth
# enabled), calseg-server with its embedded store and a policy built on Calico's tables, an
# agent enrolled for a demo node under a throwaway root, its identities installed, and etcdctl
# with the installed certificate writing an allowed key and being denied another node's key.
# Everything runs on loopback and is removed at the end (KEEP=1 keeps the directory).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "calseg demo: run as root (it installs missing Debian packages)" >&2
  exit 1
fi
CALSEG_NO_PACKAGING_TOOLS=1 bash scripts/prereqs.sh
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $(( 20000 + RANDOM % 20000 )); }

say "building calseg"
cargo build --bins --locked --quiet
BIN=$PWD/target/debug

DEMO=$(mktemp -d /tmp/calseg-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $DEMO"; else rm -rf "$DEMO"; fi
}
trap cleanup EXIT

ETCD_PORT=$(free_port); PEER_PORT=$(free_port); API_PORT=$(free_port)
ETCD=https://127.0.0.1:$ETCD_PORT

say "a CA for etcd, and etcd's server certificate"
mkdir -p "$DEMO/pki"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DEMO/pki/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$DEMO/pki/ca-key.pem" -subj "/CN=demo etcd CA" -days 365 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out "$DEMO/pki/ca.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DEMO/pki/etcd-key.pem" 2>/dev/null
openssl req -new -key "$DEMO/pki/etcd-key.pem" -subj "/CN=127.0.0.1" -out "$DEMO/pki/etcd.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > "$DEMO/pki/ext"
openssl x509 -req -in "$DEMO/pki/etcd.csr" -CA "$DEMO/pki/ca.pem" -CAkey "$DEMO/pki/ca-key.pem" \
  -CAcreateserial -days 365 -extfile "$DEMO/pki/ext" -out "$DEMO/pki/etcd.pem" 2>/dev/null

say "calseg-server init (imports that CA as the etcd client CA; mints calseg's own root identity)"
HASH=$("$BIN/calseg-server" init --config-dir "$DEMO/etc" --state-dir "$DEMO/var" \
  --san 127.0.0.1 --listen "127.0.0.1:$API_PORT" \
  --etcd-ca-cert "$DEMO/pki/ca.pem" --etcd-ca-key "$DEMO/pki/ca-key.pem" \
  --etcd-endpoint "$ETCD" --etcd-user root 2>"$DEMO/init.log")
echo "fleet CA pin for agents: $HASH"

say "etcd on $ETCD with --client-cert-auth"
etcd --name demo --data-dir "$DEMO/etcd" \
  --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "demo=http://127.0.0.1:$PEER_PORT" \
  --client-cert-auth --trusted-ca-file "$DEMO/pki/ca.pem" \
  --cert-file "$DEMO/pki/etcd.pem" --key-file "$DEMO/pki/etcd-key.pem" >"$DEMO/etcd.log" 2>&1 &
PIDS+=($!)
ROOT_CTL=(etcdctl --endpoints="$ETCD" --cacert="$DEMO/pki/ca.pem" --cert="$DEMO/etc/etcd/calseg.pem" --key="$DEMO/etc/etcd/calseg-key.pem")
for _ in $(seq 100); do ETCDCTL_API=3 "${ROOT_CTL[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
ETCDCTL_API=3 "${ROOT_CTL[@]}" user add root --no-password >/dev/null
ETCDCTL_API=3 "${ROOT_CTL[@]}" user grant-role root root >/dev/null
ETCDCTL_API=3 "${ROOT_CTL[@]}" auth enable >/dev/null
echo "auth enabled; the certificate CN is the etcd user"

say "the policy: Calico 3.29's calico-node table, felix status narrowed per node"
cat > "$DEMO/etc/policy.toml" <<POLICY
calico_version = "3.29"

[etcd]
endpoints = ["$ETCD"]

[components.calico-node]
# Calico's published calico-node grants, without the cluster-wide felix status write:
grants = [
    { prefix = "/calico/ipam/v2/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/felixconfigurations/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/nodes/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/workloadendpoints/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/clusterinformations/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/ippools/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/tiers/", access = "readwrite" },
    { prefix = "/calico/resources/v3/projectcalico.org/", access = "read" },
]
# ...and each node may write only its own felix status keys:
node_grants = [
    { prefix = "/calico/felix/v1/host/{node}/", access = "readwrite" },
    { prefix = "/calico/felix/v2/no-region/host/{node}/", access = "readwrite" },
]
env_file = "/etc/calico/calico.env"

[components.calicoctl-ro]
grants = "calicoctl-read-only"
calicoctl_cfg = "/etc/calico/calicoctl.cfg"

[[hosts]]
names = ["demo-node1", "demo-node2"]
components = ["calico-node", "calicoctl-ro"]
POLICY
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" check

say "calseg-server serve on https://127.0.0.1:$API_PORT"
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" serve >"$DEMO/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$API_PORT") 2>/dev/null && break; sleep 0.1; done
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" plan || true

say "agent: enroll demo-node1 with a one-time token, pinned to the fleet CA"
TOKEN=$("$BIN/calseg-server" --config "$DEMO/etc/server.toml" token create --node demo-node1 --ttl 10m 2>/dev/null)
mkdir -p "$DEMO/host"
cat > "$DEMO/agent.toml" <<AGENT
server = "https://127.0.0.1:$API_PORT"
node = "demo-node1"
state_dir = "$DEMO/host/var/lib/calseg/agent"
root = "$DEMO/host"
AGENT
"$BIN/calseg-agent" --config "$DEMO/agent.toml" enroll --ca-hash "$HASH" --token "$TOKEN" 2>&1 | tail -1

say "agent: one cycle (key generated here, CSR signed, checked against etcd, installed)"
set +e
"$BIN/calseg-agent" --config "$DEMO/agent.toml" once 2>&1 | sed 's/^/  /'
code=${PIPESTATUS[0]}
set -e
[ "$code" = 0 ] || [ "$code" = 2 ] || { echo "agent cycle failed ($code)"; exit 1; }

say "agent: status, and a dry run that finds nothing left to do"
"$BIN/calseg-agent" --config "$DEMO/agent.toml" status | sed 's/^/  /'
"$BIN/calseg-agent" --config "$DEMO/agent.toml" plan 2>&1 | sed 's/^/  /'

say "installed files (under the throwaway root $DEMO/host)"
# cert.pem, key.pem and ca.pem are links into a generation directory switched atomically;
# -L shows the files they point at, with their owner and mode.
find -L "$DEMO/host/etc" -type f -not -path '*/.calseg/*' -printf '%M %u:%g %p\n' | sed "s|$DEMO/host||" | sort
echo; sed 's/^/  /' "$DEMO/host/etc/calico/calico.env"

CERTS=$DEMO/host/etc/calico/certs/calico-node
NODE_CTL=(etcdctl --endpoints="$ETCD" --cacert="$CERTS/ca.pem" --cert="$CERTS/cert.pem" --key="$CERTS/key.pem")
echo; echo "certificate subject: $(openssl x509 -noout -subject -in "$CERTS/cert.pem")"

say "access check with the installed certificate (etcd user calico-node.demo-node1)"
if ETCDCTL_API=3 "${NODE_CTL[@]}" put /calico/felix/v1/host/demo-node1/status alive >/dev/null; then
  echo "ALLOWED  put /calico/felix/v1/host/demo-node1/status   (its own key)"
else
  echo "FAILED: the node could not write its own key"; exit 1
fi
if out=$(ETCDCTL_API=3 "${NODE_CTL[@]}" put /calico/felix/v1/host/demo-node2/status forged 2>&1); then
  echo "FAILED: demo-node1 wrote demo-node2's key"; exit 1
else
  echo "DENIED   put /calico/felix/v1/host/demo-node2/status   ($(echo "$out" | grep -o 'permission denied' | head -1))"
fi
if out=$(ETCDCTL_API=3 "${NODE_CTL[@]}" put /calico/resources/v3/projectcalico.org/globalnetworkpolicies/allow-all x 2>&1); then
  echo "FAILED: calico-node wrote a network policy"; exit 1
else
  echo "DENIED   put .../globalnetworkpolicies/allow-all            ($(echo "$out" | grep -o 'permission denied' | head -1))"
fi

say "audit log"
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" audit | sed 's/^/  /'
echo; echo "demo passed: per-node, per-component identities issued, installed and enforced by etcd"
