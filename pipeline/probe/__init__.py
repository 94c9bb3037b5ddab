"""The probe stage: extract metadata, choose the five required facts, compute the deadline, record
the issues that keep an item in the work queue."""
