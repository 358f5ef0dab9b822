"""What a user reads: the terminal tables, the HTML report, the report and compare commands."""
