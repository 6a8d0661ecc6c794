-- Lifecycles: completing or cancelling a session (and expiring a request) goes through one
-- function each (supabase/functions_sql/core/lifecycle.sql); a trigger refuses a final status
-- written any other way. docs/lifecycles.md lists the steps.

-- core lifecycles: AD080-AD089
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD080', 'lifecycle_bypassed', 500,
   'A final status was written without going through its lifecycle function.');
