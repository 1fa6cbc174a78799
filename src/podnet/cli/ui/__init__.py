"""`podnet ui`: the web view of a lab (issue 19). A second front end beside the command line,
over the same functions: topology from the store, `analyze`'s and `probe`'s tables, `trace`."""
