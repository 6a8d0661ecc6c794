-- Workshops: hooks other workshop concerns fill in. (Who may do what: private.workshop_role and
-- private.workshop_can, with the policies that use them, are in the migrations.)

-- Called when an appointment completes (workshops/appointments): the referral fee accrues.
create or replace function private.referral_on_appointment_completed(p_appointment_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform p_appointment_id;  -- nothing yet: the referral ledger fills this in
end
$$;
revoke execute on function private.referral_on_appointment_completed(uuid) from public;
grant execute on function private.referral_on_appointment_completed(uuid) to service_role;
