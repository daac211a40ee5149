# One snapshot artifact as a fixed-output derivation, keyed by its sha256.
#
# `envgen nix seed SPEC` puts every artifact into the Nix store beforehand
# (`nix-store --add-fixed`), so this never downloads: Nix sees the output path
# is already valid.  `url` is the artifact's original address, recorded for
# provenance (and used by Nix only if the path was never seeded and a network
# is there).  `name` is a clean store name (Debian file names may hold `%` or
# `~`, which store names cannot).  `recursive = true` is for a directory
# (hashed as a NAR), used only for the busybox trust root.
{ name, url, sha256, recursive ? false, ... }:
import <nix/fetchurl.nix> ({ inherit name url sha256; } // (if recursive then { unpack = true; } else { }))
