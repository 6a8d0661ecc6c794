-- Reviews: submit (or edit), the mechanic's reply, an admin's hide; the public projection.
-- Locks, in this order: the session (submit), the mechanic (every change that can move its
-- aggregates), the review.

-- ---------------------------------------------------------------------------------------------
-- The public projection (private.review_cards): a visible review's public columns, or nothing.
-- ---------------------------------------------------------------------------------------------
create or replace function private.reviews_publish(p_review_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from private.review_cards c
  where c.review_id = p_review_id
    and not exists (select 1 from public.mechanic_reviews r where r.id = p_review_id and r.hidden_at is null);
  insert into private.review_cards (review_id, mechanic_id, rating, body, tags, reply, replied_at,
                                    reviewer_first_name, created_at)
  select r.id, r.mechanic_id, r.rating, r.body, r.tags, r.reply, r.replied_at, r.reviewer_first_name, r.created_at
  from public.mechanic_reviews r
  where r.id = p_review_id and r.hidden_at is null
  on conflict (review_id) do update
  set rating = excluded.rating, body = excluded.body, tags = excluded.tags, reply = excluded.reply,
      replied_at = excluded.replied_at, reviewer_first_name = excluded.reviewer_first_name;
end
$$;
revoke execute on function private.reviews_publish(uuid) from public;
grant execute on function private.reviews_publish(uuid) to service_role;

-- Free text of a review or a reply: null or blank → null (or invalid_input when required);
-- longer than 2,000 characters → invalid_input.
create or replace function private.reviews_text(p_name text, p_value text, p_required boolean) returns text
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or btrim(p_value) = '' then
    if p_required then
      perform private.raise_error('invalid_input', format('%s is required', p_name));
    end if;
    return null;
  end if;
  if char_length(btrim(p_value)) > 2000 then
    perform private.raise_error('invalid_input', format('%s is longer than 2000 characters', p_name));
  end if;
  return btrim(p_value);
end
$$;
revoke execute on function private.reviews_text(text, text, boolean) from public;
grant execute on function private.reviews_text(text, text, boolean) to service_role;

-- Tags: each one a row of public.review_tags, none twice; null → none.
create or replace function private.reviews_tags(p_tags text[]) returns text[]
language plpgsql stable set search_path = ''
as $$
declare
  v_unknown text;
begin
  if p_tags is null then
    return '{}';
  end if;
  if array_ndims(p_tags) > 1 then
    perform private.raise_error('invalid_input', 'p_tags must be a list of tags');
  end if;
  if array_position(p_tags, null) is not null then
    perform private.raise_error('invalid_input', 'p_tags cannot contain null');
  end if;
  if cardinality(p_tags) > (select count(*) from public.review_tags) then
    perform private.raise_error('invalid_input', 'p_tags has more tags than the vocabulary');
  end if;
  select t into v_unknown from unnest(p_tags) t
  where not exists (select 1 from public.review_tags rt where rt.tag = t) limit 1;
  if v_unknown is not null then
    perform private.raise_error('invalid_input', format('unknown tag %L', left(v_unknown, 60)));
  end if;
  if cardinality(p_tags) <> (select count(distinct t) from unnest(p_tags) t) then
    perform private.raise_error('invalid_input', 'p_tags lists a tag twice');
  end if;
  return p_tags;
end
$$;
revoke execute on function private.reviews_tags(text[]) from public;
grant execute on function private.reviews_tags(text[]) to service_role;

-- ---------------------------------------------------------------------------------------------
-- submit_review: the customer of a delivered session reviews it, within reviews.submit_window
-- of its end; submitting again within reviews.edit_window of the first submission edits it.
-- ---------------------------------------------------------------------------------------------
create or replace function public.submit_review(
  p_session_id uuid, p_rating int, p_text text default null, p_tags text[] default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_now timestamptz := now();
  v_body text;
  v_tags text[];
  v_session public.sessions;
  v_review public.mechanic_reviews;
  v_first_name text;
  v_edited boolean := false;
begin
  perform private.require_arg('p_session_id', p_session_id);
  if p_rating is null or p_rating not between 1 and 5 then
    perform private.raise_error('invalid_input', 'p_rating must be a whole number from 1 to 5');
  end if;
  v_body := private.reviews_text('p_text', p_text, false);
  v_tags := private.reviews_tags(p_tags);

  -- one submit per session at a time: a second one waits, then edits what the first wrote
  select * into v_session from public.sessions where id = p_session_id for no key update;
  if not found or (v_session.customer_id <> v_uid and v_session.mechanic_id is distinct from v_uid
                   and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  if v_session.customer_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the session''s customer reviews it');
  end if;
  if v_session.status <> 'completed' or v_session.delivery is distinct from 'delivered' then
    perform private.raise_error('session_not_delivered', 'only a session completed as delivered can be reviewed');
  end if;

  perform private.reviews_lock_mechanic(v_session.mechanic_id);
  select * into v_review from public.mechanic_reviews where session_id = p_session_id for update;
  if v_review.id is null then
    if v_now > v_session.ended_at + private.setting_interval('reviews.submit_window') then
      perform private.raise_error('review_window_closed',
        format('a session can be reviewed for %s after it ended', private.setting_text('reviews.submit_window')));
    end if;
    select nullif(left(split_part(btrim(p.full_name), ' ', 1), 40), '') into v_first_name
    from public.profiles p where p.id = v_uid;
    insert into public.mechanic_reviews (session_id, customer_id, mechanic_id, rating, body, tags,
                                         reviewer_first_name, created_at, updated_at)
    values (p_session_id, v_uid, v_session.mechanic_id, p_rating, v_body, v_tags, v_first_name, v_now, v_now)
    returning * into v_review;
  else
    if v_review.hidden_at is not null then
      perform private.raise_error('review_hidden');
    end if;
    if v_now > v_review.created_at + private.setting_interval('reviews.edit_window') then
      perform private.raise_error('review_edit_window_closed',
        format('a review can be edited for %s after it was first submitted',
               private.setting_text('reviews.edit_window')));
    end if;
    update public.mechanic_reviews
    set rating = p_rating, body = v_body, tags = v_tags, updated_at = v_now, edit_count = edit_count + 1
    where id = v_review.id
    returning * into v_review;
    v_edited := true;
  end if;
  perform private.reviews_publish(v_review.id);
  perform private.reviews_refresh_mechanic(v_session.mechanic_id);

  return jsonb_build_object(
    'review_id', v_review.id, 'session_id', v_review.session_id, 'mechanic_id', v_review.mechanic_id,
    'rating', v_review.rating, 'text', v_review.body, 'tags', to_jsonb(v_review.tags), 'edited', v_edited,
    'created_at', v_review.created_at, 'updated_at', v_review.updated_at,
    'editable_until', v_review.created_at + private.setting_interval('reviews.edit_window'));
end
$$;
revoke execute on function public.submit_review(uuid, int, text, text[]) from public, anon;
grant execute on function public.submit_review(uuid, int, text, text[]) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- reply_to_review: the reviewed mechanic answers once.
-- ---------------------------------------------------------------------------------------------
create or replace function public.reply_to_review(p_review_id uuid, p_text text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_text text;
  v_review public.mechanic_reviews;
begin
  perform private.require_arg('p_review_id', p_review_id);
  v_text := private.reviews_text('p_text', p_text, true);
  select * into v_review from public.mechanic_reviews where id = p_review_id for update;
  if not found or (v_review.mechanic_id <> v_uid and v_review.customer_id <> v_uid and not private.is_admin()) then
    perform private.raise_error('not_found', 'no such review');
  end if;
  if v_review.mechanic_id <> v_uid then
    perform private.raise_error('not_allowed', 'only the reviewed mechanic replies');
  end if;
  if v_review.hidden_at is not null then
    perform private.raise_error('review_hidden');
  end if;
  if v_review.reply is not null then
    perform private.raise_error('review_already_replied');
  end if;
  update public.mechanic_reviews set reply = v_text, replied_at = now() where id = p_review_id
  returning * into v_review;
  perform private.reviews_publish(v_review.id);
  return jsonb_build_object('review_id', v_review.id, 'reply', v_review.reply, 'replied_at', v_review.replied_at);
end
$$;
revoke execute on function public.reply_to_review(uuid, text) from public, anon;
grant execute on function public.reply_to_review(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- admin_hide_review: kept, with the reason; out of the aggregates and the public view.
-- ---------------------------------------------------------------------------------------------
create or replace function public.admin_hide_review(p_review_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_admin uuid := private.require_admin();
  v_reason text;
  v_mechanic uuid;
  v_review public.mechanic_reviews;
begin
  perform private.require_arg('p_review_id', p_review_id);
  v_reason := private.reviews_text('p_reason', p_reason, true);
  select mechanic_id into v_mechanic from public.mechanic_reviews where id = p_review_id;
  if v_mechanic is null then
    perform private.raise_error('not_found', 'no such review');
  end if;
  perform private.reviews_lock_mechanic(v_mechanic);
  select * into v_review from public.mechanic_reviews where id = p_review_id for update;
  if v_review.hidden_at is not null then
    perform private.raise_error('review_already_hidden');
  end if;
  update public.mechanic_reviews set hidden_at = now(), hidden_reason = v_reason, hidden_by = v_admin
  where id = p_review_id
  returning * into v_review;
  perform private.reviews_publish(v_review.id);
  perform private.reviews_refresh_mechanic(v_mechanic);
  return jsonb_build_object('review_id', v_review.id, 'hidden_at', v_review.hidden_at,
                            'hidden_reason', v_review.hidden_reason);
end
$$;
revoke execute on function public.admin_hide_review(uuid, text) from public, anon;
grant execute on function public.admin_hide_review(uuid, text) to authenticated, service_role;
