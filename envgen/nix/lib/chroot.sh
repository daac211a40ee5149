# Run a command with a directory as / inside the Nix sandbox: the Nix builder's
# counterpart of the embedded builder's bubblewrap.  busybox makes a user and
# mount namespace (unshare -r -m), mounts a fresh tmpfs on /tmp and /dev (with
# /dev/null, /dev/zero, /dev/urandom bound in), binds the build inputs at
# /.build and /nix/store (read-only links in the inputs point there), and
# chroots.  The network is already cut: this runs inside the sandbox.
#
#   busybox sh chroot.sh ROOT INPUTS -- COMMAND...
bb=$busybox
if [ "$1" != "--inner" ]; then
  exec $bb unshare -r -m $bb sh "$0" --inner "$@"
fi
shift
root=$1 inputs=$2
shift 3
for d in tmp dev .build nix/store; do $bb mkdir -p "$root/$d"; done
$bb mount -t tmpfs tmpfs "$root/tmp"
$bb mount -t tmpfs tmpfs "$root/dev"
for n in null zero urandom random; do
  $bb touch "$root/dev/$n"
  $bb mount --bind "/dev/$n" "$root/dev/$n"
done
$bb mount --bind "$inputs" "$root/.build"
$bb mount -o rbind /nix/store "$root/nix/store"
exec $bb env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC \
  SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
  $bb chroot "$root" "$@"
