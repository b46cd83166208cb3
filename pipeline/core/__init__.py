"""What every stage stands on: errors, params.yaml and its one schema, safe file names,
atomic writes, and the stage runner (one-line errors, exit codes, signals).

Every stage in dvc.yaml depends on this whole folder, so a change here reruns them all.
"""
