"""The stager: moves a job's input zip from Cloud Storage into its input volume (init
container) and its output volume into Cloud Storage as one zip (cleanup job).

Kept free of heavy imports: the job API reads `errors.ExitCode` and calls
`extract.inspect_zip` without loading the storage client.
"""
