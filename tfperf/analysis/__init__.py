"""What a run says: intervals and tests, findings, tables, diagnoses from traces, the gate across runs."""
