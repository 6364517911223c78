"""The deploy scripts' code: deploy/<target> runs deploy/<target>.py's main() (docs/deploy/)."""
