"""What the job API and the pod's program (shared/stager) share: address checks, zip
limits, exit codes and environment parsing. Standard library only: the stager image copies
this package beside its own, and the API imports nothing else of the stager's."""
