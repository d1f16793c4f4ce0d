# calseg-agent %postun (%systemd_postun_with_restart): reload systemd, and on upgrade restart
# the agent if it was running. rpm has no purge: the state in /var/lib/calseg/agent stays
# and a modified agent.toml is kept as .rpmsave.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart calseg-agent.service >/dev/null 2>&1 || :
    fi
fi
exit 0
