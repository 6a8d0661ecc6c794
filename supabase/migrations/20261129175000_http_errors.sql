-- Errors of the HTTP functions themselves: the request's shape (method, media type, size), a
-- database they cannot reach, and a provider the server has no configuration for. Each provider
-- answers 503 `<provider>_not_configured` (Stripe's is `payments_not_configured`, AD021).
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD031', 'livekit_not_configured', 503, 'Video and chat rooms are not configured on this server (LiveKit).'),
  ('AD042', 'email_not_configured', 503, 'Email delivery is not configured on this server (Resend or email files).'),
  ('AD090', 'method_not_allowed', 405, 'The function does not answer this HTTP method (see the Allow header).'),
  ('AD091', 'unsupported_media_type', 415, 'The body must be sent with Content-Type: application/json.'),
  ('AD092', 'body_too_large', 413, 'The body is larger than the function accepts.'),
  ('AD093', 'database_unavailable', 503, 'The database cannot be reached right now; try again.'),
  ('AD094', 'auth_not_configured', 503, 'Access token verification is not configured on this server (Supabase Auth).');

update private.error_codes
set description = 'Payments are not configured on this server (Stripe).'
where sqlstate = 'AD021';
