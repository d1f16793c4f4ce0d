# calseg-agent %post: the directories the unit may write (ReadWritePaths= needs them), then
# %systemd_post: presets on first install (the package's preset enables the unit).
for dir in /etc/calico /etc/cni/net.d /var/lib/calseg; do
    [ -d "$dir" ] || install -d -m 0755 "$dir"
done
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset calseg-agent.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
