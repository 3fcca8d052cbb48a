"""HTML reports: one self-contained page per set of runs (build.build_report)."""
