#!/bin/sh
# Install into a temporary prefix with `cmake --install`: check the daemon, the CLI, the man
# pages, the example configuration, the systemd unit and the bash completion are there and
# sound; build the examples against the library both with pkg-config and with
# find_package(slabmq), then run them against the installed slabmqd, started here with the
# installed configuration on a free loopback port and stopped by its PID.
#   check_install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/slabmq-install.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
p=$tmp/prefix
test -f "$p/include/slabmq.h"
test -f "$p/include/slabmq_protocol.h"
libdir=$(ls -d "$p"/lib*/ | head -n1)
# the library's file is named after its soname (libslabmq.so.1 -> libslabmq.so.1.y.z), the
# soname link points at it, and the 0.2 name slabmq_client_connect2 is still exported
lib=$(ls "$libdir"libslabmq.so.*.*.* | head -n1)
if command -v readelf >/dev/null; then
    soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    case $(basename "$lib") in
    "$soname".*) ;;
    *) echo "$(basename "$lib") is not named after its soname $soname"; exit 1 ;;
    esac
    [ "$(readlink "$libdir$soname")" = "$(basename "$lib")" ] ||
        { echo "$soname does not link to $(basename "$lib")"; exit 1; }
fi
if command -v nm >/dev/null; then
    for sym in slabmq_client_connect2 slabmq_client_connect_errbuf slabmq_options_init \
        slabmq_client_on_confirmation slabmq_client_take_error slabmq_receive_max \
        slabmq_client_set_fetch_ahead; do
        nm -D --defined-only "$lib" | grep -q " T $sym$" || { echo "$lib lacks $sym"; exit 1; }
    done
fi
for f in bin/slabmqd bin/slabmq; do
    test -x "$p/$f" || { echo "missing $f"; exit 1; }
done
for f in etc/slabmq/slabmqd.conf share/man/man8/slabmqd.8 share/man/man1/slabmq.1 \
         share/bash-completion/completions/slabmq lib/systemd/system/slabmqd.service; do
    test -s "$p/$f" || { echo "missing $f"; exit 1; }
done
# every shared library the installed binaries and library need comes from a package the .deb
# depends on (packaging/CMakeLists.txt), as dpkg on this machine says
depends=$(sed -n 's/^set(CPACK_DEBIAN_PACKAGE_DEPENDS "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[ -n "$depends" ] || { echo "no CPACK_DEBIAN_PACKAGE_DEPENDS in $build/CPackConfig.cmake"; exit 1; }
if command -v readelf >/dev/null && command -v dpkg >/dev/null; then
    for f in "$p/bin/slabmqd" "$p/bin/slabmq" "$libdir"libslabmq.so.*.*; do
        for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            case $lib in libslabmq.so*) continue ;; esac
            pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -n1 | cut -d: -f1)
            [ -n "$pkg" ] || { echo "$f needs $lib, which no package provides here"; exit 1; }
            case ", $depends," in
            *", $pkg,"* | *", $pkg ("*) ;;
            *) echo "$f needs $lib from $pkg, which the .deb does not depend on"; exit 1 ;;
            esac
        done
    done
fi
# the man pages render without warnings (when man is there)
if command -v man >/dev/null; then
    for m in share/man/man8/slabmqd.8 share/man/man1/slabmq.1; do
        w=$(MANWIDTH=80 man --warnings -l "$p/$m" 2>&1 >/dev/null)
        [ -z "$w" ] || { echo "$m: $w"; exit 1; }
    done
fi
# the example configuration is valid as shipped, and names every long flag of --help
"$p/bin/slabmqd" --config "$p/etc/slabmq/slabmqd.conf" --check-config >/dev/null
for key in $("$p/bin/slabmqd" --help | sed -n 's/^  --\([a-z-]*\).*/\1/p'); do
    case $key in help | version | hash-password | config | check-config) continue ;; esac
    grep -q "^#\{0,1\}$key = " "$p/etc/slabmq/slabmqd.conf" ||
        { echo "slabmqd.conf does not list $key"; exit 1; }
done
# the unit starts the installed daemon with the installed configuration
grep -q "^ExecStart=.*/slabmqd --config .*/slabmq/slabmqd.conf$" \
    "$p/lib/systemd/system/slabmqd.service"
if command -v bash >/dev/null; then
    bash -n "$p/share/bash-completion/completions/slabmq"
    # completing "slabmq pu" offers publish and purge
    out=$(bash -c ". '$p/share/bash-completion/completions/slabmq'
        COMP_WORDS=(slabmq pu); COMP_CWORD=1; _slabmq; echo \"\${COMPREPLY[*]}\"")
    [ "$out" = "publish purge" ] || { echo "completion offered: $out"; exit 1; }
fi

# 1. pkg-config, against the shared library
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc "$src/examples/producer.c" $(pkg-config --cflags --libs slabmq) -Wl,-rpath,"$libdir" \
    -o "$tmp/producer_pc"
# 2. find_package(slabmq)
cmake -S "$src/examples" -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$tmp/ex" >/dev/null

# the installed daemon and configuration; the file's data-dir is not used without durability
"$p/bin/slabmqd" --config "$p/etc/slabmq/slabmqd.conf" --port 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
    [ -n "$port" ] && break
    sleep 0.1
done
test -n "$port" || { echo "slabmqd did not start"; cat "$tmp/err"; exit 1; }

"$tmp/producer_pc" 127.0.0.1 "$port" example one two >/dev/null
"$tmp/ex/producer" 127.0.0.1 "$port" example three >/dev/null
out=$(timeout 20 "$tmp/ex/consumer" 127.0.0.1 "$port" example 3)
expected=$(printf 'one\ntwo\nthree')
if [ "$out" != "$expected" ]; then
    echo "consumer printed:"; echo "$out"; exit 1
fi
# the installed CLI sees what the examples left
"$p/bin/slabmq" -s "127.0.0.1:$port" queues | grep -q "^example"
kill "$pid"
wait "$pid"
pid=""
echo "install check passed"
