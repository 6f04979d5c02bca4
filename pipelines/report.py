"""DVC's entry for the report: `python pipelines/report.py study=<name>` is `crossprune-report study=<name>`."""

from crossprune.report.cli import main

if __name__ == "__main__":
    main()
