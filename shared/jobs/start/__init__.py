"""The ways a job starts, one module each, over what they share:

- direct.py: its input inline (`input_zip`), by reference (`input_url`) or none;
- upload.py: by upload (`input_upload`): stored at once, deployed when its input lands;
- submission.py: by submission, a zip under `submissions/` whose job.json is the body;
- scheduled.py: any of them with `start_after` ahead: deployed suspended, resumed later.

draft.py checks a create's body and makes the job's record; records.py stores it under a
free name; deploy.py makes its one Kubernetes Job."""
