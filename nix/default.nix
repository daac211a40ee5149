# Non-flake entry point (reads the working tree directly, tracked or not):
#   nix-build nix/default.nix -A abide-env [--check]
(import ./lib/outputs.nix { specDir = ./specs; }).packages
