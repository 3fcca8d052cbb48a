"""seqbench's runner: suites -> cases -> isolated workers -> records -> tables and reports."""
