# The trust root: a static busybox, and the derivation that checks it.
#
# Nothing can unpack a .deb before there is a tool, so the tool itself is
# seeded: a directory { bin/busybox } holding the static binary from the
# pinned busybox-static .deb, added by NAR hash.  `check` re-extracts the
# binary from that pinned .deb (itself fixed by the lock's sha256) and
# compares the two, which closes the loop: every build depends on `check`.
{ fetch, data }:
let
  system = "x86_64-linux";
  busybox = fetch {
    inherit (data.busybox) name url;
    sha256 = data.busybox.narHash;
    recursive = true;
  };
  deb = fetch data.busybox.deb;
  bb = "${busybox}/bin/busybox";
  check = derivation {
    name = "${data.busybox.name}-check";
    inherit system;
    builder = bb;
    args = [ "sh" "-ec" ''
      ${bb} mkdir deb
      ${bb} dpkg-deb -x ${deb} deb
      ${bb} cmp deb/bin/busybox ${bb}
      ${bb} echo "${bb} is the busybox of ${deb}" > $out
    '' ];
  };
in
{ inherit busybox check bb; }
