"""`ktr`, the command line of the task runner: it talks to the job API over HTTP only."""
