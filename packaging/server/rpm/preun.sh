# calseg-server %preun (%systemd_preun): on erase (not upgrade) disable and stop the unit.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable calseg-server.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl stop calseg-server.service >/dev/null 2>&1 || :
    fi
fi
exit 0
