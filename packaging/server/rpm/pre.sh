# calseg-server %pre: the calseg system user (what %sysusers_create_compat expands to for
# /usr/lib/sysusers.d/calseg-server.conf, which the package also ships).
getent group calseg >/dev/null || groupadd -r calseg
getent passwd calseg >/dev/null || \
    useradd -r -g calseg -d /var/lib/calseg -M -s /sbin/nologin -c "calseg server" calseg
exit 0
