"""Builders: turn a snapshot into an environment tree (embedded; Nix in envgen.builders.nix)."""
