-- Trust: prices follow the slot and the mechanic.
-- A reschedule is priced like a new booking of the new slot: equal or cheaper goes through (the
-- difference refunded to where it was paid from), dearer is refused with price_changed and the
-- booking stays as it was.
insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD140', 'price_changed', 409,
   'The new slot costs more than the booking was paid for: book the new slot and cancel the old booking instead.');
