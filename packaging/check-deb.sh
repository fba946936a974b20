#!/usr/bin/env bash
# Install the .deb in a pristine Debian 12 root and check what a user would: it installs with
# its dependencies from apt, postinst made the user and data directory, the maintainer
# scripts can run again, the service's ExecStartPre/ExecStart lines work as the service user,
# the CLI talks to the daemon, and remove/reinstall/purge succeed.
#   sudo packaging/check-deb.sh build-deb/slabmq_0.2.0_amd64.deb
# Needs root, a Debian 12 minbase tarball (FRESH_BASE, default the one ../shared/tools/
# fresh-check caches) and the Debian package registry. systemd does not run in a chroot:
# the unit is checked with systemd-analyze verify on the host instead.
set -euo pipefail

deb=$(realpath "${1:?usage: check-deb.sh PACKAGE.deb}")
base=${FRESH_BASE:-/var/cache/fresh-check/bookworm-minbase.tar}
root=$(mktemp -d /tmp/slabmq-deb-root.XXXXXX)
cleanup() {
    for m in dev proc; do umount -l "$root/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$base"
chmod 755 "$root" # the tarball's root is 0700: the service user must reach /usr
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
cp "$deb" "$root/tmp/slabmq.deb"

in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c "$1"
}

echo "== install with apt (pulls the Depends) =="
in_root 'apt-get update -qq && apt-get install -y -qq /tmp/slabmq.deb >/dev/null'
echo "== postinst made the user and the data dir; run it again (idempotent) =="
in_root 'getent passwd slabmq && stat -c "%U:%G %a %n" /var/lib/slabmq
         /var/lib/dpkg/info/slabmq.postinst configure 0.2.0
         dpkg --configure -a
         test "$(getent passwd slabmq | wc -l)" = 1'
echo "== installed files =="
in_root 'ls -l /usr/bin/slabmqd /usr/bin/slabmq /etc/slabmq/slabmqd.conf \
         /usr/lib/systemd/system/slabmqd.service /usr/share/man/man8/slabmqd.8* \
         /usr/share/man/man1/slabmq.1* /usr/share/bash-completion/completions/slabmq
         dpkg -s slabmq | grep -E "^(Status|Conffiles)" -A1'
echo "== the ExecStartPre and ExecStart lines of the unit, as the service user =="
in_root 'cd /var/lib/slabmq
    pre=$(sed -n "s/^ExecStartPre=//p" /usr/lib/systemd/system/slabmqd.service)
    start=$(sed -n "s/^ExecStart=//p" /usr/lib/systemd/system/slabmqd.service)
    setpriv --reuid=slabmq --regid=slabmq --init-groups $pre
    setpriv --reuid=slabmq --regid=slabmq --init-groups $start >/tmp/out 2>/tmp/err &
    pid=$!
    for i in $(seq 1 50); do grep -q "^listening on" /tmp/out && break; sleep 0.1; done
    cat /tmp/out
    slabmq publish smoke hello
    test "$(slabmq consume smoke)" = hello
    kill -HUP $pid; sleep 0.3
    kill -TERM $pid; wait $pid
    echo "slabmqd exit status $?"
    cat /tmp/err'
echo "== durable: durability = sqlite in the data dir, as the service user =="
in_root 'cd /var/lib/slabmq
    setpriv --reuid=slabmq --regid=slabmq --init-groups slabmqd --config /etc/slabmq/slabmqd.conf \
        --durability sqlite >/tmp/out 2>/tmp/err &
    pid=$!
    for i in $(seq 1 50); do grep -q "^listening on" /tmp/out && break; sleep 0.1; done
    slabmq publish kept one; kill -TERM $pid; wait $pid
    ls -l /var/lib/slabmq'
echo "== remove, reinstall, purge =="
in_root 'dpkg -r slabmq >/dev/null && test ! -e /usr/bin/slabmqd && test -e /etc/slabmq/slabmqd.conf
         dpkg -i /tmp/slabmq.deb >/dev/null && test -x /usr/bin/slabmqd
         dpkg -P slabmq >/dev/null && test ! -e /etc/slabmq/slabmqd.conf
         test -d /var/lib/slabmq && getent passwd slabmq >/dev/null
         dpkg -i /tmp/slabmq.deb >/dev/null && dpkg -s slabmq | grep -q "install ok installed"'
echo "deb check passed"
