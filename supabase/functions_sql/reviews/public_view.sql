-- Reviews: what anyone (anon included) may read of a review. Visible reviews only, and of each
-- only the rating, the text, the tags, the mechanic's reply, the dates and the reviewer's first
-- name (a snapshot taken when it was first submitted): no customer, no session, no review id.
create or replace view public.mechanic_reviews_public with (security_invoker = true) as
select c.mechanic_id, c.rating, c.body as text, c.tags, c.reply, c.replied_at, c.created_at,
       c.reviewer_first_name
from private.review_cards c;
grant select on public.mechanic_reviews_public to anon, authenticated, service_role;
comment on view public.mechanic_reviews_public is
  'Visible reviews of mechanics as anyone may see them: rating, text, tags, reply, dates, reviewer''s first name.';
