# Run a command with a directory as its /, as the calling user, with the network cut:
# the bubblewrap of places that have nothing but a static busybox.
#
#   busybox sh enter.sh BUSYBOX ROOT [--bind SRC DST]... [--assembler] -- [NAME=VALUE]... COMMAND [ARG]...
#
# busybox makes a user, mount and network namespace (`unshare -r -m -n`: no
# root, no setuid helper), binds /proc, a tmpfs /dev holding the host's null,
# zero, full, random, urandom and tty (those that exist: what bubblewrap binds
# in turn), a fresh tmpfs /tmp and each SRC (recursively) at ROOT/DST, then
# `pivot_root`s into ROOT and drops the old root, so nothing of the host is
# left in view but the binds.  pivot_root, not chroot: a chrooted process may
# not make user namespaces, and envgen, run this way, starts bubblewrap.
# The command starts with an empty environment plus the NAME=VALUE pairs;
# --assembler first sets the fixed environment the assembler starts with
# (envgen.builders.embedded.assembler_environ's variables, plus PATH, HOME and
# LANG; SOURCE_DATE_EPOCH is the caller's; assemble.py sets its children's).
#
# Two callers: the Nix builder, inside its sandbox (envgen/nix/lib/build-env.sh,
# build-wheel.sh), and a bundle's VERIFY.sh on a bare host (envgen/selfhost).
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
  [ -e "/dev/$n" ] || continue
  "$bb" touch "dev/$n"
  "$bb" mount --bind "/dev/$n" "dev/$n"
done
"$bb" ln -s /proc/self/fd dev/fd
"$bb" mkdir -p tmp
"$bb" mount -t tmpfs -o mode=1777 tmpfs tmp
while [ "$1" = --bind ]; do
  src=$2 dst=.$3
  if [ -d "$src" ]; then
    "$bb" mkdir -p "$dst"
  else
    "$bb" mkdir -p "$("$bb" dirname "$dst")"
    "$bb" touch "$dst"
  fi
  "$bb" mount --rbind "$src" "$dst"
  shift 3
done
env=
if [ "$1" = --assembler ]; then
  env="PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
  env="$env PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1"
  shift
fi
[ "$1" = -- ] || { echo "enter.sh: expected -- before the command, got $1" >&2; exit 2; }
shift
"$bb" mkdir -p .bb
"$bb" touch .bb/busybox
"$bb" mount --bind "$bb" .bb/busybox
"$bb" pivot_root . .old
cd /
/.bb/busybox umount -l /.old
/.bb/busybox rmdir /.old
# shellcheck disable=SC2086  # $env: NAME=VALUE words without spaces
exec /.bb/busybox env -i $env "$@"
