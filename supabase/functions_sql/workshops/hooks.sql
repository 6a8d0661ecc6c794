-- Workshops: hooks other workshop concerns fill in. (Who may do what: private.workshop_role and
-- private.workshop_can, with the policies that use them, are in the migrations.)

-- Called when an appointment completes (workshops/appointments): the referral fee accrues —
-- private.referral_on_appointment_completed(appointment_id), in workshops/referral.sql.
