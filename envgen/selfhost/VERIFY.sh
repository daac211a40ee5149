#!/bin/sh
# VERIFY.sh: the artifact-evaluation verdict of this envgen bundle, on a bare host.
#
#   tar -xf BUNDLE VERIFY.sh && sh VERIFY.sh BUNDLE [--html FILE] [--json] [--claim LEVEL] [--keep DIR]
#                                                   [--key PUB]
#
# Needs: x86_64 Linux whose kernel lets an unprivileged user make user
# namespaces, a POSIX sh, tar and coreutils.  Not needed: Python, bubblewrap,
# zstd, xz, dpkg, envgen, root, or a network.  BUNDLE must be a plain .tar (or
# a .tar.gz where gzip is installed).
#
# 1. Check: every member is a regular file listed in envgen-bundle.json, and
#    its sha256 is the one listed there.  Nothing from the bundle runs before.
# 2. Bootstrap: the bundle's static busybox (its sha256 is pinned below, and
#    it must match the busybox inside its pinned .deb) unpacks the .debs of
#    envgen's own runtime (Python, bubblewrap, their libraries); that Python,
#    with the unpacked tree as /, runs envgen's assembler to install envgen's
#    pinned wheels: the same program, plan and inputs as `envgen build`.
# 3. Verify: the bundle's envgen (envgen-source.tar) runs `envgen verify` on
#    the bundle inside that tree, network cut, and its verdict and exit status
#    are this script's: 0 the claimed level holds, 1 it does not, 2 unusable.
#    With --key PUB (the authors' ed25519 public key), it first checks that
#    the bundle's provenance and SBOM are signed by that key (exit 2 if not).
#
# Everything happens in one temporary directory (under $TMPDIR, else /tmp),
# removed at the end unless --keep DIR names where to keep it.
set -eu

# The pins of this bundle, written by `envgen archive`: the busybox binary and
# the .deb it comes from; envgen's runtime .debs in unpack order; its wheels
# and the assembler's tools as FILE=SHA256; the lock; the interpreter.
# @DATA@

say() { printf 'VERIFY.sh: %s\n' "$*" >&2; }
die() { printf 'VERIFY.sh: %s\n' "$*" >&2; exit 2; }
usage="usage: sh VERIFY.sh BUNDLE [--html FILE] [--json] [--claim available|functional|reproduced] [--keep DIR] [--key PUB]"

[ $# -ge 1 ] || die "$usage"
case $1 in -h|--help) printf '%s\n' "$usage"; exit 0;; esac
bundle=$1
shift
[ -f "$bundle" ] || die "$bundle: no such file"
html= keep= pass= key=
while [ $# -gt 0 ]; do
  case $1 in
    --html) [ $# -ge 2 ] || die "--html needs a FILE"; html=$2; shift 2;;
    --keep) [ $# -ge 2 ] || die "--keep needs a DIR"; keep=$2; shift 2;;
    --claim) [ $# -ge 2 ] || die "--claim needs a level"; pass="$pass --claim $2"; shift 2;;
    --json) pass="$pass --json"; shift;;
    --key) [ $# -ge 2 ] || die "--key needs a public key FILE"; key=$2; shift 2;;
    *) die "unknown argument $1; $usage";;
  esac
done
[ "$(uname -m)" = x86_64 ] || die "this bundle's runtime is for x86_64; this host is $(uname -m)"
case $bundle in /*) ;; *) bundle=$(pwd)/$bundle;; esac
if [ -n "$html" ]; then case $html in /*) ;; *) html=$(pwd)/$html;; esac; fi
if [ -n "$key" ]; then
  [ -f "$key" ] || die "--key $key: no such file"
  case $key in /*) ;; *) key=$(pwd)/$key;; esac
fi

if [ -n "$keep" ]; then
  mkdir -p "$keep" && w=$(cd "$keep" && pwd)
  [ -z "$(ls -A "$w")" ] || die "--keep $keep: not an empty directory"
else
  w=$(mktemp -d "${TMPDIR:-/tmp}/envgen-verify.XXXXXX")
  trap 'chmod -R u+w "$w" 2>/dev/null; rm -rf "$w"' EXIT
  trap 'exit 130' INT TERM
fi
b=$w/bundle
mkdir "$b" "$w/src" "$w/in" "$w/in/wheels" "$w/in/tools" "$w/root" "$w/work" "$w/out"

# ---------------------------------------------------------------- 1. check
say "checking every member of $(basename "$bundle") against its manifest"
tar -tvf "$bundle" > "$w/listing" 2>/dev/null || die "$bundle: not a tar archive this tar can read"
while read -r perms rest; do
  case $perms in -*) ;; *) die "refused: a member is not a regular file: $perms $rest";; esac
done < "$w/listing"
tar -xf "$bundle" -C "$b" || die "$bundle: cannot extract"
[ -f "$b/envgen-bundle.json" ] || die "$bundle: not an envgen bundle (no envgen-bundle.json)"
: > "$w/sums"
: > "$w/names"
path=
while IFS= read -r line; do
  case $line in
    '   "path": "'*) path=${line#*: \"}; path=${path%\",};;
    '   "sha256": "'*)
      sha=${line#*: \"}; sha=${sha%\",}
      case $path in ''|*[!A-Za-z0-9._/+-]*|/*|*..*) die "refused: unexpected member name '$path' in the manifest";; esac
      case $sha in *[!0-9a-f]*) die "refused: malformed sha256 for $path";; esac
      [ ${#sha} -eq 64 ] || die "refused: malformed sha256 for $path"
      printf '%s  %s\n' "$sha" "$path" >> "$w/sums"
      printf '%s\n' "$path" >> "$w/names"
      path=;;
  esac
done < "$b/envgen-bundle.json"
echo envgen-bundle.json >> "$w/names"
sort "$w/names" > "$w/expected"
tar -tf "$bundle" | sort > "$w/present"
if [ "$(cat "$w/expected")" != "$(cat "$w/present")" ]; then
  die "refused: the members in the archive are not those its manifest lists"
fi
if ! (cd "$b" && sha256sum --quiet --strict -c "$w/sums") >&2; then
  die "refused: members above do not hash to the manifest's sha256; nothing from this bundle was run"
fi
[ "$(sha256sum < "$b/selfhost/busybox" | cut -d' ' -f1)" = "$BUSYBOX_SHA256" ] ||
  die "refused: selfhost/busybox is not the busybox this script pins"
say "all $(wc -l < "$w/sums") members hold their sha256"

# ---------------------------------------------------------------- 2. bootstrap
bb=$w/busybox
cp "$b/selfhost/busybox" "$bb"
chmod 0755 "$bb"
obj() { printf '%s/objects/sha256/%s' "$b" "$1"; }
"$bb" mkdir "$w/deb"
"$bb" dpkg-deb -x "$(obj "$BUSYBOX_DEB")" "$w/deb"
[ "$(sha256sum < "$w/deb/bin/busybox" | cut -d' ' -f1)" = "$BUSYBOX_SHA256" ] ||
  die "refused: selfhost/busybox differs from the busybox inside its pinned .deb"
rm -rf "$w/deb"
"$bb" unshare -r -m -n "$bb" true 2>/dev/null ||
  die "this kernel does not let an unprivileged user make user namespaces (see sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns); VERIFY.sh needs them"

say "unpacking envgen's runtime ($(echo $DEBS | wc -w) .debs) with busybox"
for sha in $DEBS; do
  "$bb" dpkg-deb -x "$(obj "$sha")" "$w/root"
done
chmod -R u+w "$w/root"
tar -xf "$b/envgen-source.tar" -C "$w/src"
cp "$w/src/envgen/builders/assemble.py" "$w/src/envgen/layout.py" "$w/in/"
cp "$b/selfhost/plan.json" "$w/in/plan.json"
cp "$(obj "$LOCK")" "$w/in/pylock.toml"
cp "$b/selfhost/snapshot.json" "$w/in/snapshot.json"
link() { ln "$(obj "${1#*=}")" "$2/${1%%=*}" 2>/dev/null || cp "$(obj "${1#*=}")" "$2/${1%%=*}"; }
for x in $WHEELS; do link "$x" "$w/in/wheels"; done
for x in $TOOLS; do link "$x" "$w/in/tools"; done
enter() { "$bb" sh "$b/selfhost/enter.sh" "$bb" "$w/root" "$@"; }
epoch=$(sed -n 's/^ "epoch": \([0-9]*\),$/\1/p' "$w/in/plan.json")
say "installing envgen's runtime ($(echo $WHEELS | wc -w) wheels) with its own Python"
SOURCE_DATE_EPOCH=$epoch enter --bind "$w/in" /.build --assembler -- \
  "$PYTHON" -I -B -S /.build/assemble.py assemble /.build/plan.json >&2 ||
  die "installing envgen's runtime failed (see above)"

# ---------------------------------------------------------------- 3. verify
name=$(basename "$bundle")
say "running envgen verify from the bundle's envgen, network cut"
status=0
if [ -n "$key" ]; then
  cp "$key" "$w/out/key.pub"  # inside, beside the report: the key is checked by the bundle's envgen
  pass="$pass --key /out/key.pub"
fi
enter --bind "$w/src" /.envgen-src --bind "$bundle" "/bundle/$name" --bind "$w/work" /work --bind "$w/out" /out \
  -- PATH=/opt/env/bin:/usr/bin:/bin HOME=/work TMPDIR=/work LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC \
  PYTHONPATH=/.envgen-src ENVGEN_STORE=/work/store \
  /opt/env/bin/python -m envgen verify "/bundle/$name" --html /out/report.html $pass || status=$?
if [ -n "$html" ] && [ -f "$w/out/report.html" ]; then
  cp "$w/out/report.html" "$html"
  say "report: $html"
fi
exit "$status"
