#!/bin/bash
# Build the Debian package (debian/) and check it with lintian (`make deb`).
#
#   scripts/deb-build.sh [OUTDIR]      OUTDIR defaults to build/deb
#
# dpkg-buildpackage writes its results next to the source directory, and
# dh leaves its work under debian/: so the build runs in a copy of the
# tree (the files git tracks, and the new ones it does not ignore, as they
# are now) in a temporary directory, and only the .deb, .buildinfo and
# .changes files come back, into OUTDIR. Lintian's report goes to the
# terminal; the script fails on any lintian error (warnings pass).
# Installs what it needs first (scripts/deps.sh --deb).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/build/deb}
case "$out" in
    /*) ;;
    *) out="$(pwd)/$out" ;;
esac

die() {
    echo "deb-build: $*" >&2
    exit 1
}

"$repo/scripts/deps.sh" --deb || die "missing Debian packages (see above)"
if ! git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    die "$repo is not a git checkout: run dpkg-buildpackage -us -uc -b in a copy of the tree instead"
fi

version=$(cd "$repo" && dpkg-parsechangelog -S Version)
package=$(cd "$repo" && dpkg-parsechangelog -S Source)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mod_runai_token-deb.XXXXXX")
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

src="$tmp/$package-$version"
mkdir "$src"
# Files deleted in the work tree but still in the index are left out.
(
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
        done |
        tar --null -T - -cf -
) | tar -C "$src" -xf -

echo "deb-build: dpkg-buildpackage -us -uc -b in $src"
log="$tmp/build.log"
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "dpkg-buildpackage failed (the last lines of its output are above)"
fi
changes=$(find "$tmp" -maxdepth 1 -name "${package}_${version}_*.changes" | head -n 1)
[ -n "$changes" ] || die "dpkg-buildpackage wrote no .changes file"

echo "deb-build: lintian $(basename "$changes")"
# Every tag is shown (-I --pedantic: info and pedantic ones too); only
# errors fail (--fail-on error). Lintian would rather not run as root: as
# root it runs as nobody, who can read the results.
lintian=(lintian --fail-on error -I --pedantic --tag-display-limit 0 "$changes")
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1; then
    chmod 755 "$tmp"
    lintian=(runuser -u nobody -- env HOME=/nonexistent TMPDIR=/tmp "${lintian[@]}")
fi
rc=0
report=$(cd /tmp && "${lintian[@]}" 2>&1) || rc=$?
if [ -n "$report" ]; then
    printf '%s\n' "$report"
else
    echo "deb-build: lintian: no tags (no error, warning, info or pedantic tag)"
fi
[ "$rc" = 0 ] || die "lintian failed (exit status $rc; errors above)"

mkdir -p "$out"
for f in "$tmp"/*.deb "$tmp"/*.buildinfo "$changes"; do
    cp "$f" "$out/"
    echo "deb-build: wrote $out/$(basename "$f")"
done
