#!/usr/bin/env bash
# The .deb as a user installs it: cpack builds it from the build dir; debootstrap makes a clean
# Debian 12 root (minbase: no fuse, no libraries fbfs links); apt installs the .deb there, taking
# its Depends from Debian's mirror. Then, inside that root: fbfs --version names the version and
# the pack format, the man page is in place, root mounts a volume, writes, packs and verifies it,
# and an ordinary user mounts through the setuid fusermount3 that the fuse3 dependency brought.
#
# Usage: tests/package/deb_test.sh BUILD_DIR (as root). FBFS_DEBIAN_MIRROR overrides the mirror
# (default http://deb.debian.org/debian). Everything happens in a private mount namespace and a
# temp dir, both gone on every path out.
set -euo pipefail

build=$(realpath "$1")
mirror=${FBFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
# The newest pack format this fbfs writes, as the source declares it.
pack_format=$(sed -n 's/^inline constexpr std::uint32_t k_version = \([0-9]*\);$/\1/p' \
  "$(dirname "$0")/../../store/pack/pack_format.h")
[[ $pack_format =~ ^[0-9]+$ ]] || { echo "deb test: no k_version in store/pack/pack_format.h" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/fbfs-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() {
  echo "deb test: $*" >&2
  exit 1
}

(cd "$build" && cpack -G DEB -B "$work/deb" >"$work/cpack.log" 2>&1) || fail "cpack failed: $(cat "$work/cpack.log")"
deb=$(ls "$work"/deb/fbfs_*.deb)
depends=$(dpkg-deb -f "$deb" Depends)
for needed in fuse3 libfuse3-3 liblmdb0 libssl3 libzstd1; do
  [[ $depends == *"$needed"* ]] || fail "Depends lacks $needed: $depends"
done

debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  fail "debootstrap failed: $(tail -5 "$work/debootstrap.log")"
[ ! -e "$work/root/usr/bin/fusermount3" ] || fail "the clean root already has fuse3"
cp "$deb" "$work/root/tmp/fbfs.deb"
# /dev/fuse as desktop distributions and CI runners have it (0666), for this root only; and
# /etc/mtab, which systemd links on installed systems and fusermount3 -u reads.
mknod -m 666 "$work/root/dev/fuse" c 10 229
ln -sf ../proc/self/mounts "$work/root/etc/mtab"

# Inside a private mount namespace: /proc for the root, then the checks.
unshare --mount --propagation private bash -euo pipefail -s "$work/root" "$version" \
  "$(dirname "$0")/../support" "$pack_format" <<'EOS'
root=$1
version=$2
support=$3
pack_format=$4
"$support/let-go-of-fuse-mounts"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
fail() { echo "deb test: $*" >&2; exit 1; }

in_root sh -c 'echo "deb '"${FBFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"' bookworm main" > /etc/apt/sources.list'
if ! in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends /tmp/fbfs.deb' >"$root/tmp/apt.log" 2>&1; then
  cat "$root/tmp/apt.log" >&2
  fail "apt could not install the .deb"
fi
said=$(in_root fbfs --version)
[[ $said == "fbfs $version (pack format $pack_format,"* ]] || fail "fbfs --version said: $said"
[ -f "$root/usr/share/man/man1/fbfs.1.gz" ] || fail "no man page at /usr/share/man/man1/fbfs.1.gz"
[ -u "$root/usr/bin/fusermount3" ] || fail "the fuse3 dependency brought no setuid fusermount3"

# Root: mount, write, unmount, pack, verify.
in_root sh -euc '
  mkdir -p /tmp/m
  fbfs mount --store /tmp/store /tmp/m
  echo "written in a clean root" > /tmp/m/file
  fbfs umount /tmp/m
  fbfs pack --store /tmp/store -o /tmp/store.pack
  fbfs verify --store /tmp/store
  fbfs mount --store /tmp/store /tmp/m
  grep -q "written in a clean root" /tmp/m/file
  fbfs umount /tmp/m'
# An ordinary user, through fusermount3.
in_root chroot --userspec=65534:65534 / env HOME=/tmp/user sh -euc '
  mkdir -p /tmp/user/m
  fbfs mount /tmp/user/m
  echo mine > /tmp/user/m/file
  grep -q "^fbfs:default:.* /tmp/user/m fuse.fbfs " /proc/self/mounts
  fbfs umount /tmp/user/m
  fbfs stat | grep -q "1 files"'
if grep -q ' fuse\.fbfs ' /proc/self/mounts; then
  grep ' fuse\.fbfs ' /proc/self/mounts | while read -r _ m _; do umount -l "$m"; done
  fail "a mount was left behind"
fi
EOS
echo "deb test: $(basename "$deb") installs into a clean Debian 12 root, mounts there as root and as a user"
