# Non-flake entry point (reads the working tree directly, tracked or not):
#   nix-build nix/default.nix -A abide-env [--check]
# envgen writes this file (from envgen/nix/template/default.nix) as nix/default.nix
# of every flake directory, beside envgen/nix/lib.
(import ../envgen/nix/lib/outputs.nix { specDir = ./specs; }).packages
