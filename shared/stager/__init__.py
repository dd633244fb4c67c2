"""The stager: moves a job's input zip from a signed URL into its input volume (init
container `stage-in`) and its output volume into Cloud Storage as one zip, through an upload
session opened by the functions (container `stage-out`). It holds no Google identity and
uses only the standard library. What the job API shares with it (address checks, zip
limits, exit codes, environment parsing) is in shared/contract/; the API imports nothing
from here.
"""
