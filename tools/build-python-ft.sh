#!/usr/bin/env bash
# Build a free-threaded CPython (./configure --disable-gil) into PREFIX unless a complete build
# is already there. Used by `make test-free-threaded`.
#
# The version is 3.14 by default: PyO3 (0.30) refuses the free-threaded build of any CPython
# below 3.14, so a free-threaded 3.13 cannot load memspace at all.
#
# The source is upstream's release tarball, taken from Debian's python3.X source package (built
# without Debian's patches) through a private apt configuration, so /etc/apt is not touched:
# the first of the suites sid, forky, trixie whose mirror serves it. FT_SOURCE=/path/to/
# Python-3.14.x.tar.xz (or an unpacked source directory) uses that instead.
set -euo pipefail

prefix=${1:?usage: build-python-ft.sh PREFIX [VERSION]}
version=${2:-3.14}
stamp="$prefix/.memspace-build-complete"
if [ -f "$stamp" ] && [ -x "$prefix/bin/python${version}t" ]; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"

fetch_from_debian() {
    local suite=$1
    rm -rf "$work/apt" && mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian $suite main" >"$work/apt/sources.list"
    cat >"$work/apt/apt.conf" <<CONF
Dir::Etc::SourceList "$work/apt/sources.list";
Dir::Etc::SourceParts "$work/apt/none";
Dir::State::Lists "$work/apt/lists";
Dir::Cache "$work/apt/cache";
APT::Sandbox::User "root";
CONF
    APT_CONFIG="$work/apt/apt.conf" apt-get -q update >/dev/null 2>&1 || return 1
    (cd "$work/src" && APT_CONFIG="$work/apt/apt.conf" \
        apt-get -q source --download-only "python$version" >/dev/null 2>&1) || return 1
    ls "$work"/src/python"$version"_*.orig.tar.xz >/dev/null 2>&1
}

if [ -n "${FT_SOURCE:-}" ]; then
    if [ -d "$FT_SOURCE" ]; then
        cp -a "$FT_SOURCE" "$work/src/Python-$version-given"
    else
        tar -C "$work/src" -xf "$FT_SOURCE"
    fi
else
    found=
    for suite in sid forky trixie; do
        echo "build-python-ft: looking for Debian's python$version source package in $suite"
        if fetch_from_debian "$suite"; then
            found=$suite
            break
        fi
        rm -f "$work"/src/python"$version"_*
    done
    if [ -z "$found" ]; then
        echo "build-python-ft: no source of CPython $version could be downloaded from Debian" \
            "(sid, forky, trixie) through this machine's mirror; give one with" \
            "FT_SOURCE=/path/to/Python-$version.N.tar.xz" >&2
        exit 2
    fi
    tar -C "$work/src" -xf "$(ls "$work"/src/python"$version"_*.orig.tar.xz)"
fi
srcdir=$(ls -d "$work"/src/Python-"$version"*/ | head -1)

rm -rf "$prefix"
echo "build-python-ft: building $(basename "$srcdir") with --disable-gil into $prefix"
cd "$srcdir"
log="$work/build.log"
{
    nice -n 10 ./configure --disable-gil --prefix="$prefix" --with-ensurepip=install &&
        nice -n 10 make -j"$(nproc)" &&
        nice -n 10 make install
} >"$log" 2>&1 || { tail -50 "$log"; exit 1; }
"$prefix/bin/python${version}t" -c 'import ssl, sys; assert not sys._is_gil_enabled(), "GIL is on"'
touch "$stamp"
echo "build-python-ft: done"
