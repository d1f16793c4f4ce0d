# calseg-server %post: the state directory (%tmpfiles_create), then %systemd_post: presets on
# first install (the package's preset enables the unit; a site preset can say otherwise).
systemd-tmpfiles --create /usr/lib/tmpfiles.d/calseg-server.conf >/dev/null 2>&1 || :
# The server reads /etc/calseg through its group; nobody else needs to.
chown root:calseg /etc/calseg && chmod 0750 /etc/calseg || :
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset calseg-server.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
