#!/usr/bin/env bash
# Boot a pristine Debian 12 root under a real systemd (PID 1, in systemd-nspawn) and check the
# .deb there as a user would get it: apt installs it, postinst enables and starts slabmqd.service,
# the service runs as the slabmq user and answers the CLI, reload keeps its PID, stop ends it
# cleanly, it starts again by itself at the next boot, and removing the package stops it.
#   sudo packaging/check-systemd.sh build-deb/slabmq_0.2.0_amd64.deb
# A manual/release check, not part of ctest: it needs root, about two minutes, the Debian
# package registry and a Debian 12 minbase tarball (FRESH_BASE, default the one
# ../shared/tools/fresh-check caches). Uses systemd-nspawn (package systemd-container); if it is
# not installed, one is unpacked from the Debian package into a temp dir (the host's systemd
# must then be Debian 12's). On a host whose PID 1 is not systemd (a container), the boot runs
# in a cgroup of its own with --register=no --keep-unit, since there is no machined to ask.
# Exit status 0 only if every check in both boots passed.
set -euo pipefail

deb=$(realpath "${1:?usage: check-systemd.sh PACKAGE.deb}")
base=${FRESH_BASE:-/var/cache/fresh-check/bookworm-minbase.tar}
work=$(mktemp -d /tmp/slabmq-systemd.XXXXXX)
root=$work/root
cgname=slabmq-check.$$
cgdirs=()
nspawn_run_existed=$([ -e /run/systemd/nspawn ] && echo yes || echo no)
cleanup() {
    for m in dev proc; do umount -l "$root/$m" 2>/dev/null || true; done
    local d
    for d in "${cgdirs[@]}"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    [ "$nspawn_run_existed" = no ] && rm -rf /run/systemd/nspawn
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

nspawn=$(command -v systemd-nspawn || true)
if [ -z "$nspawn" ]; then
    (cd "$work" && apt-get download -q systemd-container >/dev/null 2>&1 &&
        dpkg-deb -x systemd-container_*.deb nspawn)
    nspawn=$work/nspawn/usr/bin/systemd-nspawn
fi

mkdir "$root"
tar -C "$root" -xf "$base"
chmod 755 "$root" # the tarball's root is 0700: the service user must reach /usr
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/var/tmp/slabmq.deb" # nspawn mounts a tmpfs on /tmp
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"

echo "== systemd and dbus in the fresh root (the package itself is installed once booted) =="
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd dbus >/dev/null
     dpkg-query -W systemd dbus'
umount -l "$root/dev" "$root/proc"

# The checks, run inside the booted system by a oneshot unit; the report goes to
# /var/log/slabmq-check/PHASE.txt and its last line is "result: pass" or "result: FAIL".
cat >"$root/usr/local/sbin/slabmq-check" <<'EOF'
#!/bin/bash
phase=$1
out=/var/log/slabmq-check/$phase.txt
mkdir -p /var/log/slabmq-check
exec >"$out.part" 2>&1
export DEBIAN_FRONTEND=noninteractive
fail=0
check() { if "$@"; then echo "ok: $*"; else echo "FAILED: $*"; fail=1; fi; }
finish() {
    echo "result: $([ $fail = 0 ] && echo pass || echo FAIL)"
    mv "$out.part" "$out"
    systemctl --no-block poweroff
}
trap finish EXIT
prop() { systemctl show -P "$1" slabmqd; }
wait_pong() {
    local i
    for i in $(seq 1 50); do slabmq ping >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

echo "== $phase: PID 1 is $(cat /proc/1/comm), $(systemctl --version | head -1)"
if [ "$phase" = install ]; then
    echo "== apt-get install /var/tmp/slabmq.deb, with systemd running"
    check apt-get install -y -q /var/tmp/slabmq.deb
fi
check wait_pong
echo "== the service"
echo "is-active: $(systemctl is-active slabmqd)"
echo "is-enabled: $(systemctl is-enabled slabmqd)"
systemctl show -p MainPID,User,Group,ActiveState,SubState,NRestarts,WorkingDirectory slabmqd
pid=$(prop MainPID)
echo "process $pid: $(cat /proc/$pid/comm 2>/dev/null) owned by $(stat -c %U /proc/$pid 2>/dev/null)"
check test "$(systemctl is-active slabmqd)" = active
check test "$(systemctl is-enabled slabmqd)" = enabled
check test "$(prop User)" = slabmq
check test "$(stat -c %U /proc/$pid)" = slabmq
check test "$(cat /proc/$pid/comm)" = slabmqd
check test "$(prop NRestarts)" = 0
echo "== the CLI"
slabmq ping
check slabmq ping
check slabmq publish smoke hello
check test "$(slabmq consume smoke)" = hello
if [ "$phase" = install ]; then
    echo "== reload keeps the process; stop ends it cleanly; start again"
    check systemctl reload slabmqd
    sleep 0.5
    check test "$(prop MainPID)" = "$pid"
    check systemctl stop slabmqd
    systemctl show -p ActiveState,Result,ExecMainStatus slabmqd
    check test "$(prop Result)" = success
    check test "$(prop ExecMainStatus)" = 0
    check systemctl start slabmqd
    check wait_pong
else
    echo "== apt-get remove stops and disables the service"
    check apt-get remove -y -q slabmq
    systemctl show -p ActiveState,LoadState slabmqd
    check test "$(systemctl is-active slabmqd)" != active
    check test -z "$(grep -lx slabmqd /proc/[0-9]*/comm 2>/dev/null)"
fi
echo "== journalctl -u slabmqd"
journalctl -u slabmqd --no-pager -o short-monotonic
EOF
chmod 755 "$root/usr/local/sbin/slabmq-check"
for phase in install boot; do
    cat >"$root/etc/systemd/system/slabmq-check-$phase.service" <<EOF
[Unit]
Description=slabmq check ($phase)
After=network.target dbus.service slabmqd.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/slabmq-check $phase
TimeoutStartSec=150

[Install]
WantedBy=multi-user.target
EOF
done

# Outside a systemd host: a cgroup of our own in each hierarchy nspawn uses, so its
# supervisor/payload cgroups land under it and go with it.
opts=(-q -D "$root" -M slabmq-check --boot)
if [ ! -d /run/systemd/system ]; then
    opts+=(--register=no --keep-unit)
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ "$(stat -fc %T "$h" 2>/dev/null)" = tmpfs ] && continue
        [ -e "$h/cgroup.procs" ] || continue
        mkdir "$h/$cgname" && cgdirs+=("$h/$cgname")
    done
fi
boot() {
    (
        for d in "${cgdirs[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
        exec timeout 180 "$nspawn" "${opts[@]}"
    ) </dev/null >"$work/boot-$1.log" 2>&1 || true
    echo "== boot $1: what the check unit saw =="
    if [ ! -s "$root/var/log/slabmq-check/$1.txt" ]; then
        echo "no report: the end of the console:"
        tail -n 40 "$work/boot-$1.log"
        return 1
    fi
    cat "$root/var/log/slabmq-check/$1.txt"
    tail -n 1 "$root/var/log/slabmq-check/$1.txt" | grep -qx "result: pass"
}

status=0
chroot "$root" systemctl enable -q slabmq-check-install.service
boot install || status=1
chroot "$root" systemctl disable -q slabmq-check-install.service
chroot "$root" systemctl enable -q slabmq-check-boot.service
boot boot || status=1
if [ "$status" != 0 ]; then
    echo "systemd check FAILED (see the FAILED lines above)"
    exit 1
fi
echo "systemd check passed"
