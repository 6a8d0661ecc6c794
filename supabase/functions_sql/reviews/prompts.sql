-- Reviews: what happens when a session is delivered (called by private.complete_session).
create or replace function private.reviews_on_session_delivered(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  -- nothing yet: the review prompt is added with the reviews
  perform p_session_id;
end
$$;
revoke execute on function private.reviews_on_session_delivered(uuid) from public;
grant execute on function private.reviews_on_session_delivered(uuid) to service_role;
