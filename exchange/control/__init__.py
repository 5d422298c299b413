"""The control topics every process follows: catalog snapshots, schemas, grant events."""
