"""CloudTrail's LookupEvents over the audit trail, so ``aws cloudtrail lookup-events`` reads it."""
