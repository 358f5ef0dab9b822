"""Child processes: started with deadlines, spoken to over pipes, stopped when a run ends, fails or is interrupted."""
