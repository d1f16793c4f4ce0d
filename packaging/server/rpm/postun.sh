# calseg-server %postun (%systemd_postun_with_restart): reload systemd, and on upgrade restart
# the server if it was running. rpm has no purge: /var/lib/calseg and the calseg user stay
# (Fedora keeps system users), modified %config files are kept as .rpmsave.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart calseg-server.service >/dev/null 2>&1 || :
    fi
fi
exit 0
