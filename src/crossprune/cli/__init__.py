"""The command line: `crossprune` (app), `crossprune-report` (report), the checks every job passes before it runs,
fast help, the study sweeper's glue and the sweep's table."""
