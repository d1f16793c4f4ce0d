#!/usr/bin/env bash
# calseg end to end on one machine, as root: a local etcd (TLS, client-certificate auth, auth
# enabled), calseg-server with its embedded store and a policy built on Calico's tables, and a
# host with a real systemd (sandboxed in namespaces on an overlay of /, as the tests boot them)
# running a stand-in calico-node.service. The agent on that host enrolls, installs the node's
# identities, and restarts the unit once through systemd's D-Bus API; the unit then works with
# its new identity, and etcdctl with the installed certificate writes the node's own key and is
# denied another node's. Everything runs on loopback and is removed at the end (KEEP=1 keeps
# the directory).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "calseg demo: run as root (it installs missing Debian packages)" >&2
  exit 1
fi
CALSEG_NO_PACKAGING_TOOLS=1 bash scripts/prereqs.sh

if [ -t 1 ]; then say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else say() { printf '\n== %s\n' "$*"; }; fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $(( 20000 + RANDOM % 20000 )); }

say "building calseg"
cargo build --bins --locked --quiet
BIN=$PWD/target/debug

DEMO=$(mktemp -d /tmp/calseg-demo.XXXXXX)
PIDS=()
cleanup() {
  # The sandboxed host first: killing its PID 1 ends every process in it, and its mounts and
  # overlay go with its namespaces.
  [ -n "${HOST_PID:-}" ] && kill -KILL "$HOST_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${SANDBOX_CGROUP:-}" ]; then
    for _ in $(seq 50); do
      find /sys/fs/cgroup -depth -type d -path "*/$SANDBOX_CGROUP*" -exec rmdir {} + 2>/dev/null || true
      [ -z "$(find /sys/fs/cgroup -type d -path "*/$SANDBOX_CGROUP" 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
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

say "the policy: Calico 3.29, calico-node on the narrowed per-node profile"
cat > "$DEMO/etc/policy.toml" <<POLICY
calico_version = "3.29"

[etcd]
endpoints = ["$ETCD"]

[components.calico-node]
# Each node writes only its own keys (Node object, felix status, IPAM affinities); what
# Calico's design shares (IPAM blocks and handles, its tiers) stays shared, reads stay wide.
grants = "calico-node-per-node"
restart = ["calico-node.service"]
env_file = "/etc/calico/calico-node.env"

[components.calicoctl-ro]
grants = "calicoctl-read-only"
calicoctl_cfg = "/etc/calico/calicoctl.cfg"

[[hosts]]
names = ["demo-node1", "demo-node2"]
components = ["calico-node", "calicoctl-ro"]

[datastore]
# The exact version calico-node reports: it rewrites ClusterInformation when this differs.
calico_release = "v3.29.3"
POLICY
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" check

say "calseg-server serve on https://127.0.0.1:$API_PORT"
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" serve >"$DEMO/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$API_PORT") 2>/dev/null && break; sleep 0.1; done
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" plan || true

say "calseg-server datastore init: Calico's cluster-wide objects, created once by calseg's root identity"
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" datastore init | sed 's/^/  /'

say "a host with a real systemd: demo-node1, sandboxed (PID, mount and UTS namespaces, an overlay of /)"
# The recipe the tests use (tests/sandbox/boot.sh): the machine's root filesystem is never
# changed; everything the host writes lands in a tmpfs that goes with it.
mkdir -p "$DEMO/sandbox"
SANDBOX_CGROUP=calseg-demo-$$
setpriv --pdeathsig KILL -- unshare --pid --fork --kill-child --mount --propagation private --uts \
  /bin/sh "$PWD/tests/sandbox/boot.sh" "$DEMO/sandbox" demo-node1 "$SANDBOX_CGROUP" "$PWD/target" \
  >"$DEMO/sandbox.log" 2>&1 &
PIDS+=($!)
HOST_PID=
for _ in $(seq 100); do
  HOST_PID=$(cat "/proc/${PIDS[-1]}/task/${PIDS[-1]}/children" 2>/dev/null | awk '{print $1}')
  [ -n "$HOST_PID" ] && break; sleep 0.1
done
[ -n "$HOST_PID" ] || { cat "$DEMO/sandbox.log"; echo "the sandbox did not start"; exit 1; }
on_host() { nsenter -t "$HOST_PID" -m -p -u -r -w -- /bin/sh -c "$*"; }
state=
for _ in $(seq 300); do
  state=$(on_host systemctl is-system-running 2>/dev/null) || true
  case "$state" in running | degraded) break ;; esac
  sleep 0.2
done
case "$state" in running | degraded) ;; *) cat "$DEMO/sandbox.log"; echo "systemd did not boot (state: ${state:-none})"; exit 1 ;; esac
echo "systemd in the sandbox: $state (PID $HOST_PID outside, 1 inside)"
HOST_ROOT=/proc/$HOST_PID/root

say "a stand-in for calico-node.service: it reads /etc/calico/calico-node.env and writes its felix status key"
install -m 0755 tests/sandbox/calico-standin.sh "$HOST_ROOT/usr/local/bin/calico-standin"
cat > "$HOST_ROOT/etc/systemd/system/calico-node.service" <<UNIT
[Unit]
Description=stand-in for calico-node (calseg demo)
[Service]
EnvironmentFile=-/etc/calico/calico-node.env
ExecStart=/usr/local/bin/calico-standin
Restart=on-failure
RestartSec=1
UNIT
on_host systemctl daemon-reload
on_host systemctl start calico-node.service
main_pid() { on_host systemctl show -p MainPID --value calico-node.service; }
PID_BEFORE=$(main_pid)
echo "calico-node.service: $(on_host systemctl is-active calico-node.service), MainPID $PID_BEFORE, no etcd identity yet"

say "agent on demo-node1: enroll with a one-time token, pinned to the fleet CA"
TOKEN=$("$BIN/calseg-server" --config "$DEMO/etc/server.toml" token create --node demo-node1 --ttl 10m 2>/dev/null)
mkdir -p "$HOST_ROOT/etc/calseg"
cat > "$HOST_ROOT/etc/calseg/agent.toml" <<AGENT
server = "https://127.0.0.1:$API_PORT"
node = "demo-node1"
restart_timeout = "10s"
AGENT
on_host "$BIN/calseg-agent" enroll --ca-hash "$HASH" --token "$TOKEN" 2>&1 | tail -1

say "agent: one cycle (key generated on the host, CSR signed, checked against etcd, installed, unit restarted over D-Bus)"
set +e
on_host "$BIN/calseg-agent" once 2>&1 | sed 's/^/  /'
code=${PIPESTATUS[0]}
set -e
[ "$code" = 0 ] || [ "$code" = 2 ] || { echo "agent cycle failed ($code)"; exit 1; }
PID_AFTER=$(main_pid)
echo "calico-node.service: $(on_host systemctl is-active calico-node.service), MainPID $PID_BEFORE -> $PID_AFTER"
[ "$PID_AFTER" != "$PID_BEFORE" ] && [ "$PID_AFTER" != 0 ] || { echo "FAILED: the agent did not restart calico-node.service"; exit 1; }

say "agent: status, and a dry run that finds nothing left to do"
on_host "$BIN/calseg-agent" status | sed 's/^/  /'
on_host "$BIN/calseg-agent" plan 2>&1 | sed 's/^/  /'

say "installed files on demo-node1"
# cert.pem, key.pem and ca.pem are links into a generation directory switched atomically;
# -L shows the files they point at, with their owner and mode.
on_host "find -L /etc/calico -type f -not -path '*/.calseg/*' -printf '%M %u:%g %p\n'" | sort
echo; sed 's/^/  /' "$HOST_ROOT/etc/calico/calico-node.env"
echo; echo "certificate subject: $(openssl x509 -noout -subject -in "$HOST_ROOT/etc/calico/certs/calico-node/cert.pem")"

say "calico-node.service after the restart, using its new identity (its journal)"
sleep 2
on_host journalctl -u calico-node.service --no-pager -o cat 2>/dev/null | tail -n 4 | sed 's/^/  /' || true
WROTE=$(ETCDCTL_API=3 "${ROOT_CTL[@]}" get --print-value-only /calico/felix/v1/host/demo-node1/status)
echo "its key in etcd: /calico/felix/v1/host/demo-node1/status = $WROTE (written by MainPID ${WROTE#alive-} inside)"
[ -n "$WROTE" ] || { echo "FAILED: the restarted unit wrote nothing"; exit 1; }

say "access check on demo-node1 with the installed certificate (etcd user calico-node.demo-node1)"
CERTS=/etc/calico/certs/calico-node
NODE_CTL="ETCDCTL_API=3 etcdctl --endpoints=$ETCD --cacert=$CERTS/ca.pem --cert=$CERTS/cert.pem --key=$CERTS/key.pem"
if on_host "$NODE_CTL put /calico/felix/v1/host/demo-node1/status alive" >/dev/null; then
  echo "ALLOWED  put /calico/felix/v1/host/demo-node1/status   (its own key)"
else
  echo "FAILED: the node could not write its own key"; exit 1
fi
if out=$(on_host "$NODE_CTL put /calico/felix/v1/host/demo-node2/status forged" 2>&1); then
  echo "FAILED: demo-node1 wrote demo-node2's key"; exit 1
else
  echo "DENIED   put /calico/felix/v1/host/demo-node2/status   ($(echo "$out" | grep -o 'permission denied' | head -1))"
fi
if out=$(on_host "$NODE_CTL put /calico/resources/v3/projectcalico.org/globalnetworkpolicies/allow-all x" 2>&1); then
  echo "FAILED: calico-node wrote a network policy"; exit 1
else
  echo "DENIED   put .../globalnetworkpolicies/allow-all            ($(echo "$out" | grep -o 'permission denied' | head -1))"
fi

say "who can touch what, from etcd's live auth state: calseg-server exposure --component calico-node"
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" exposure --component calico-node | sed 's/^/  /'
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" can-i calico-node.demo-node1 write /calico/felix/v1/host/demo-node2/status \
  | sed 's/^/  can-i: /' || true

say "audit log"
"$BIN/calseg-server" --config "$DEMO/etc/server.toml" audit | sed 's/^/  /'
echo; echo "demo passed: per-node, per-component identities issued, installed and enforced by etcd"
