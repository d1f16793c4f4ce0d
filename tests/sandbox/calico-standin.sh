#!/bin/sh
# Stand-in for calico-node: reads its etcd identity from the environment calseg's env file
# sets (ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE), as Calico does.
# With CALICO_REPLAY set (the path of the test crate's calico-replay), it becomes that replay
# of calico-node's and Felix's etcd operations (`calico-replay run`); otherwise it writes its
# node's felix status key with etcdctl every second. Any etcd error ends it (exit 1).
# The tests' hosts have /usr/local/bin/etcdctl, a wrapper running the harness's etcdctl
# (CALSEG_ETCD_BIN_DIR, see tests/src/agent_host.rs), ahead of /usr/bin on systemd's PATH.
# Used by the end-to-end tests (tests/src/agent_host.rs) and scripts/demo.sh.
set -u
if [ -z "${ETCD_CERT_FILE:-}" ]; then
  echo "calico-node stand-in: no etcd identity yet; waiting for calseg to install one"
  exec sleep infinity
fi
if [ -f /etc/calico/break-unless-serial ]; then
  serial=$(openssl x509 -noout -serial -in "$ETCD_CERT_FILE" | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
  [ "$serial" = "$(cat /etc/calico/break-unless-serial)" ] || { echo "refusing certificate $serial" >&2; exit 1; }
fi
if [ -n "${CALICO_REPLAY:-}" ]; then
  exec "$CALICO_REPLAY" run
fi
key="/calico/felix/v1/host/$(hostname)/status"
echo "calico-node stand-in: etcd identity $(openssl x509 -noout -subject -in "$ETCD_CERT_FILE" 2>/dev/null); writing $key every second"
# One write; like Calico's clientv3, a write that meets an etcd member going away (connection
# refused or closed, no leader for a moment) is tried again, up to 5 times, and said so; any
# other error (a refused certificate, permission denied) ends the stand-in at once.
put() {
  tries=0
  while true; do
    out=$(ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" --cacert="$ETCD_CA_CERT_FILE" \
      --cert="$ETCD_CERT_FILE" --key="$ETCD_KEY_FILE" --dial-timeout=2s \
      put "$key" "alive-$$" 2>&1) && return 0
    tries=$((tries + 1))
    case "$out" in
      *"connection refused"*|*"transport is closing"*|*"error reading from server: EOF"*|*"leader changed"*|*"no leader"*|*"Unavailable"*|*"context deadline exceeded"*)
        if [ "$tries" -lt 5 ]; then
          echo "calico-node stand-in: transient etcd error, trying again: $out" >&2
          sleep 0.2
          continue
        fi ;;
    esac
    echo "calico-node stand-in: etcd error: $out" >&2
    return 1
  done
}
while true; do
  put || exit 1
  sleep 1
done
