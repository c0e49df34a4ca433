"""What a run reports: live progress, its summary and Prefect artifacts, the contact sheet."""
