#!/bin/sh
# Make Debian 12's bookworm-backports suite available to apt, from the Debian mirror this
# machine's apt already uses, so that `apt-get install -t bookworm-backports PKG` works.
# libraft-dev 0.22.1 (the maintained cowsql/raft fork) is only there: Debian 12 itself ships
# 0.15.0 from the archived canonical/raft (docs/dependencies.md).
#
# The mirror is read from the configured sources in either of apt's formats: deb822
# (/etc/apt/sources.list.d/*.sources, "URIs:" of a stanza whose "Suites:" has bookworm) or
# one-line (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list, "deb URI bookworm ...").
# No mirror address is written in this repository. The suite is added as its own deb822
# file, /etc/apt/sources.list.d/slabmq-backports.sources, with the same Signed-By as the
# stanza it came from when there is one; backports packages are pinned at 100 by Debian's
# Release file, so nothing else on the machine moves to them unless named with -t.
# Safe to run again: an existing file is left as it is. Exit status 2 when no Debian
# bookworm mirror can be found (the message says where it looked).
set -eu

TARGET=/etc/apt/sources.list.d/slabmq-backports.sources

# "URI SIGNED_BY" of the first deb822 stanza serving bookworm (not -security), if any.
from_deb822() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && [ "$f" != "$TARGET" ] || continue
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && uris != "" \
                    && uris !~ /security/ && enabled != "no") {
                    split(uris, u, " ")
                    print u[1], (signed == "" ? "-" : signed)
                    found = 1
                    exit
                }
                types = suites = uris = signed = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "") }
            key == "types" { types = $0 }
            key == "suites" { suites = $0 }
            key == "uris" { uris = $0 }
            key == "signed-by" && $0 ~ /^\// { signed = $0 } # a path, not an inline key
            key == "enabled" { enabled = tolower($0) }
            END { if (!found) flush() }
        ' "$f"
    done | head -n 1
}

# "URI -" of the first one-line "deb" entry serving bookworm (not -security), if any.
from_one_line() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '
            /^[ \t]*deb[ \t]/ {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == "bookworm" && $i !~ /security/) { print $i, "-"; exit }
            }
        '
}

if [ -f "$TARGET" ]; then
    exit 0
fi
found=$(from_deb822)
[ -n "$found" ] || found=$(from_one_line)
if [ -z "$found" ]; then
    echo "backports: no Debian bookworm mirror in /etc/apt/sources.list or" \
        "/etc/apt/sources.list.d/*.sources|*.list; add bookworm-backports by hand" >&2
    exit 2
fi
uri=${found%% *}
signed=${found#* }
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi
{
    echo "# Added by slabmq's scripts/backports.sh: bookworm-backports, from the mirror of this machine's bookworm source."
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    if [ "$signed" != "-" ]; then
        echo "Signed-By: $signed"
    fi
} | $SUDO tee "$TARGET.part" >/dev/null
$SUDO mv "$TARGET.part" "$TARGET"
echo "backports: added bookworm-backports from $uri ($TARGET)" >&2
