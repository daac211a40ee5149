# Run a command with a directory as its /, as the calling user, with the network cut.
#
#   busybox sh enter.sh BUSYBOX ROOT [--bind SRC DST]... -- [NAME=VALUE]... COMMAND [ARG]...
#
# Only a static busybox is needed: it makes a user, mount and network
# namespace (`unshare -r -m -n`, so no root and no setuid helper), binds /proc,
# a small /dev (null, zero, full, random, urandom, tty: what bubblewrap binds in turn) and each SRC at ROOT/DST, then
# `pivot_root`s into ROOT and drops the old root, so nothing of the host is
# left in view but the binds.  pivot_root, not chroot: a chrooted process may
# not make user namespaces, and the command (envgen) runs bubblewrap, which
# does.  The command starts with an empty environment plus the NAME=VALUE
# pairs given.  A bundle's VERIFY.sh runs envgen's assembler and then envgen
# itself this way (envgen/selfhost/__init__.py).
set -eu
if [ "${1:-}" != --inner ]; then
  bb=$1
  shift
  exec "$bb" unshare -r -m -n "$bb" sh "$0" --inner "$bb" "$@"
fi
bb=$2 root=$3
shift 3
"$bb" mount --make-rprivate /
"$bb" mount --bind "$root" "$root"
cd "$root"
"$bb" mkdir -p .old proc dev
"$bb" mount --rbind /proc proc
"$bb" mount -t tmpfs -o mode=0755 tmpfs dev
for n in null zero full random urandom tty; do
  "$bb" touch "dev/$n"
  "$bb" mount --bind "/dev/$n" "dev/$n"
done
"$bb" ln -s /proc/self/fd dev/fd
while [ "$1" = --bind ]; do
  src=$2 dst=.$3
  if [ -d "$src" ]; then
    "$bb" mkdir -p "$dst"
  else
    "$bb" mkdir -p "$("$bb" dirname "$dst")"
    "$bb" touch "$dst"
  fi
  "$bb" mount --bind "$src" "$dst"
  shift 3
done
[ "$1" = -- ] || { echo "enter.sh: expected -- before the command, got $1" >&2; exit 2; }
shift
"$bb" mkdir -p .bb
"$bb" touch .bb/busybox
"$bb" mount --bind "$bb" .bb/busybox
"$bb" pivot_root . .old
cd /
/.bb/busybox umount -l /.old
/.bb/busybox rmdir /.old
exec /.bb/busybox env -i "$@"
