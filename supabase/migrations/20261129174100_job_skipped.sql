-- A job whose provider is not configured on this deployment (e.g. closing a LiveKit room where no
-- LiveKit is set up) ends as `skipped`, with the reason in last_error, instead of being retried
-- until it is dead-lettered.
alter type private.outbox_status add value if not exists 'skipped';
